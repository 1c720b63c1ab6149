"""Cloud endpoints' health on the registry's heartbeat, over real HTTP: a dead endpoint (nothing
listening) goes down, a third-party OpenAI-compatible server is probed on ``/models`` with its key and
follows its answers; ``/health`` and ``/v1/devices`` report them, ``/v1/models`` lists only models
with an endpoint up, a request for a model whose only endpoint is down gets 503; and the ranking that
per-token decisions read is cached until the registry changes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from coordinator.api import CoordinatorState, create_app
from coordinator.cluster.placement import LeastLoaded
from coordinator.cluster.registry import Registry
from coordinator.streaming.dispatch import Dispatcher
from edgeweave.config import CoordinatorConfig, DiscoConfig
from edgeweave.wire.auth import ClusterKey

HEARTBEAT_S = 0.05
KEY = "third-party-key-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ThirdParty:
    """Someone else's OpenAI-compatible server: answers ``GET /v1/models`` with ``status``."""

    status: int = 200
    auth: list[str | None] = field(default_factory=list)

    def app(self) -> web.Application:
        async def models(request: web.Request) -> web.Response:
            self.auth.append(request.headers.get("Authorization"))
            return web.json_response({"object": "list", "data": []}, status=self.status)

        app = web.Application()
        app.router.add_get("/v1/models", models)
        return app


@dataclass
class Setup:
    registry: Registry
    dispatcher: Dispatcher
    third: ThirdParty
    client: TestClient


@pytest.fixture()
async def setup() -> AsyncIterator[Setup]:
    third = ThirdParty()
    async with TestServer(third.app()) as upstream, aiohttp.ClientSession() as session:
        cfg = CoordinatorConfig.model_validate(
            {
                "heartbeat_s": HEARTBEAT_S,
                "cloud": [
                    {"name": "dead", "url": f"http://127.0.0.1:{free_port()}/v1", "models": ["lonely"]},
                    {
                        "name": "other",
                        "url": str(upstream.make_url("/v1")),
                        "api_key": KEY,
                        "models": ["shared"],
                        "extensions": False,
                    },
                ],
            }
        )
        registry = Registry(cfg, ClusterKey(b"k" * 32), session)
        dispatcher = Dispatcher(registry, cfg.cloud, LeastLoaded(), session)
        state = CoordinatorState([], registry, dispatcher, False, DiscoConfig())
        async with TestClient(TestServer(create_app(state, 1 << 20))) as client:
            registry.start()
            try:
                yield Setup(registry, dispatcher, third, client)
            finally:
                await registry.stop()


async def until(check: object, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(HEARTBEAT_S / 2)


async def test_the_heartbeat_checks_cloud_endpoints_and_follows_them_down_and_up(setup: Setup) -> None:
    clouds = setup.registry.clouds
    await until(lambda: clouds["dead"].state == "down")
    assert clouds["dead"].last_error and "health check failed" in clouds["dead"].last_error
    assert clouds["other"].state == "up" and setup.third.auth[-1] == f"Bearer {KEY}"
    setup.third.status = 503
    before = setup.registry.version
    await until(lambda: clouds["other"].state == "down")
    assert setup.registry.version > before and clouds["other"].last_error == "health check answered HTTP 503"
    setup.third.status = 200
    await until(lambda: clouds["other"].state == "up")
    assert clouds["other"].missed == 0 and clouds["other"].last_error is None


async def test_health_devices_and_models_report_cloud_endpoints(setup: Setup) -> None:
    c = setup.client
    await until(lambda: setup.registry.clouds["dead"].state == "down")
    health = await (await c.get("/health")).json()
    assert health["status"] == "ok" and health["devices_up"] == 0 and health["cloud_up"] == 1
    assert [(e["name"], e["state"]) for e in health["cloud"]] == [("dead", "down"), ("other", "up")]
    listed = await (await c.get("/v1/devices")).json()
    assert listed["data"] == [] and [e["name"] for e in listed["cloud"]] == ["dead", "other"]
    assert listed["cloud"][0]["models"] == ["lonely"] and listed["cloud"][0]["missed_heartbeats"] >= 2
    models = await (await c.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["shared"]  # "lonely"'s only endpoint is down
    body = {"model": "lonely", "messages": [{"role": "user", "content": "hi"}]}
    resp = await c.post("/v1/chat/completions", json=body)
    assert resp.status == 503 and (await resp.json())["error"]["code"] == "unavailable"


async def test_the_ranking_per_token_decisions_read_is_cached_until_the_registry_changes(setup: Setup) -> None:
    await setup.registry.stop()  # no heartbeats: the registry changes only where this test says
    d, other = setup.dispatcher, setup.registry.clouds["other"]
    ranked = d.ranked("shared")
    assert [c.endpoint for c in ranked] == ["cloud:other"] and ranked[0].in_flight == 0
    other.in_flight = 3  # a load change alone is read by the next request, not by every token
    assert d.ranked("shared") is ranked and d.candidates("shared")[0].in_flight == 3
    for _ in range(setup.registry.cfg.down_after_missed):
        setup.registry.cloud_missed(other, "gone")
    assert d.ranked("shared") == [] and d.best("shared", "cloud") is None and d.fallback("shared", "device:x") is None
