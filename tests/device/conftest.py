"""The device tests' shared parts: the weave-home-device worker on torch, an in-process daemon
serving it, and signed-request helpers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from coordinator.cluster.device_client import DeviceClient
from device.server import create_app
from device.worker import ModelWorker
from edgeweave.config import DEFAULT_POWER, DeviceConfig, ModelSpec
from edgeweave.generation.backends import load_backend
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.protocol import DoneEvent, GenerateRequest, StartEvent, TokenMessage

KEY = ClusterKey(b"device-test-cluster-secret-000")
MAX_QUEUE = 2


@pytest.fixture(scope="module")
def worker() -> ModelWorker:
    spec = ModelSpec(model="weave-home-device", backend="torch", threads=1, max_queue=MAX_QUEUE)
    w = ModelWorker(
        spec, load_backend("torch", "weave-home-device", threads=1), DEFAULT_POWER["jetson"], os.cpu_count() or 1
    )
    w.warm_up()
    return w


@asynccontextmanager
async def serve(worker: ModelWorker, embedder: str | None = "all-minilm-l6-v2") -> AsyncIterator[TestServer]:
    cfg = DeviceConfig(id="jetson-t", kind="jetson", models=[worker.spec], embedder=embedder)
    async with TestServer(create_app(cfg, KEY, [worker])) as srv:
        yield srv


@pytest.fixture
async def server(worker: ModelWorker) -> AsyncIterator[TestServer]:
    async with serve(worker) as srv:
        yield srv


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def collect(client: DeviceClient, req: GenerateRequest) -> tuple[StartEvent, list[TokenMessage], DoneEvent]:
    async with client.generate(req) as events:
        got = [ev async for ev in events]
    start, tokens, done = got[0], got[1:-1], got[-1]
    assert isinstance(start, StartEvent) and isinstance(done, DoneEvent)
    assert all(isinstance(t, TokenMessage) for t in tokens)
    return start, tokens, done  # type: ignore[return-value]


async def post_signed(
    session: aiohttp.ClientSession, server: TestServer, body: bytes, path: str = "/v1/generate"
) -> tuple[int, dict]:
    headers = {**KEY.sign_request("POST", path, body), "Content-Type": "application/json"}
    async with session.post(url(server) + path, data=body, headers=headers) as resp:
        return resp.status, await resp.json()
