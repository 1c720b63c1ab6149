"""The coordinator's Circinus routes: a cluster's devices and cloud endpoints as the places Circinus
can run operators, behind the coordinator's one API key.

- ``GET /v1/circinus/endpoints``: every device that is up (its id and kind)
  and every edgeweave cloud endpoint (``cloud:NAME``, kind ``cloud``).
- ``POST /v1/circinus/run/{endpoint}``: runs one operator there.  The body
  is what :mod:`edgeweave.operators.routes` takes (one tensor frame); the
  coordinator relays it, signed with the cluster key to a device, with the
  endpoint's API key to the cloud, and hands the answer back as it came,
  refusals included (a 400 naming the field).  An unknown endpoint is a 404,
  an unreachable one a 502, both naming ``endpoint``.

So an app holding only the coordinator's URL and API key (the traffic app,
``edgeweave circinus plan --url``) profiles and runs pipelines on the
cluster's own tiers.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from coordinator.cluster.device_client import DeviceError
from coordinator.cluster.registry import Registry
from coordinator.streaming.dispatch import Dispatcher
from edgeweave.config import CloudEndpoint
from edgeweave.serving.http_errors import ApiError
from edgeweave.wire.tensor_frames import CONTENT_TYPE

REGISTRY = web.AppKey("circinus_registry", Registry)
DISPATCHER = web.AppKey("circinus_dispatcher", Dispatcher)
CLOUD_PREFIX = "cloud:"
RUN_PATH = "/v1/circinus/run"
TIMEOUT_S = 300.0  # an LLM operator on a slow device, loaded on first use


def _clouds(dispatcher: Dispatcher) -> dict[str, CloudEndpoint]:
    """Cloud endpoints that are edgeweave servers (only those serve operators)."""
    return {CLOUD_PREFIX + name: c for name, c in dispatcher.cloud.items() if c.extensions}


async def endpoints(request: web.Request) -> web.Response:
    devices = [
        {"id": r.id, "kind": r.info.kind}
        for r in sorted(request.app[REGISTRY].devices.values(), key=lambda r: r.id)
        if r.state == "up"
    ]
    clouds = [{"id": name, "kind": "cloud"} for name in sorted(_clouds(request.app[DISPATCHER]))]
    return web.json_response({"object": "list", "data": devices + clouds})


async def run(request: web.Request) -> web.Response:
    name = request.match_info["endpoint"]
    body = await request.read()
    cloud = _clouds(request.app[DISPATCHER]).get(name)
    if cloud is not None:
        status, raw = await _to_cloud(request.app[DISPATCHER].session, name, cloud, body)
    else:
        rec = request.app[REGISTRY].devices.get(name)
        if rec is None or rec.state != "up":
            raise ApiError(404, f"endpoint: no device or cloud endpoint {name!r} is up", param="endpoint")
        try:
            status, raw = await rec.client.post(RUN_PATH, body, CONTENT_TYPE, TIMEOUT_S)
        except DeviceError as e:
            raise ApiError(502, f"endpoint: {name}: {e}", param="endpoint") from None
    content_type = CONTENT_TYPE if status == 200 else "application/json"
    return web.Response(body=raw, status=status, content_type=content_type)


async def _to_cloud(session: aiohttp.ClientSession, name: str, c: CloudEndpoint, body: bytes) -> tuple[int, bytes]:
    headers = {"Content-Type": CONTENT_TYPE}
    if c.api_key is not None:
        headers["Authorization"] = f"Bearer {c.api_key.get_secret_value()}"
    url = str(c.url).rstrip("/").removesuffix("/v1") + RUN_PATH
    try:
        async with session.post(url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as r:
            return r.status, await r.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise ApiError(502, f"endpoint: {name}: {type(e).__name__} {e}", param="endpoint") from None


def add_routes(app: web.Application, registry: Registry, dispatcher: Dispatcher) -> None:
    app[REGISTRY] = registry
    app[DISPATCHER] = dispatcher
    app.router.add_get("/v1/circinus/endpoints", endpoints)
    app.router.add_post("/v1/circinus/run/{endpoint}", run)
