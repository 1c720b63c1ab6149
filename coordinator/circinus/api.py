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

Bodies are :mod:`edgeweave.wire.circinus`'s; the relay is the core's client
(:class:`edgeweave.wire.client.WireClient`), which checks a device's signature.

So an app holding only the coordinator's URL and API key (the traffic app,
``edgeweave circinus plan --url``) profiles and runs pipelines on the
cluster's own tiers.
"""

from __future__ import annotations

from aiohttp import web

from coordinator.cluster.registry import Registry
from coordinator.streaming.dispatch import Dispatcher
from edgeweave.config import CloudEndpoint
from edgeweave.serving.http_errors import ApiError
from edgeweave.wire.circinus import ENDPOINTS_PATH, RUN_PATH, EndpointInfo, EndpointList
from edgeweave.wire.client import CallError, WireClient
from edgeweave.wire.tensor_frames import CONTENT_TYPE

REGISTRY = web.AppKey("circinus_registry", Registry)
DISPATCHER = web.AppKey("circinus_dispatcher", Dispatcher)
CLOUD_PREFIX = "cloud:"
TIMEOUT_S = 300.0  # an LLM operator on a slow device, loaded on first use


def _clouds(dispatcher: Dispatcher) -> dict[str, CloudEndpoint]:
    """Cloud endpoints that are edgeweave servers (only those serve operators)."""
    return {CLOUD_PREFIX + name: c for name, c in dispatcher.cloud.items() if c.extensions}


async def endpoints(request: web.Request) -> web.Response:
    devices = [
        EndpointInfo(id=r.id, kind=r.info.kind)
        for r in sorted(request.app[REGISTRY].devices.values(), key=lambda r: r.id)
        if r.state == "up"
    ]
    clouds = [EndpointInfo(id=name, kind="cloud") for name in sorted(_clouds(request.app[DISPATCHER]))]
    return web.Response(text=EndpointList(data=devices + clouds).model_dump_json(), content_type="application/json")


async def run(request: web.Request) -> web.Response:
    name = request.match_info["endpoint"]
    body = await request.read()
    client = _client(request, name)
    try:
        answer = await client.exchange("POST", RUN_PATH, body, CONTENT_TYPE, TIMEOUT_S)
    except CallError as e:
        raise ApiError(502, f"endpoint: {name}: {e}", param="endpoint") from None
    content_type = CONTENT_TYPE if answer.status == 200 else "application/json"
    return web.Response(body=answer.body, status=answer.status, content_type=content_type)


def _client(request: web.Request, name: str) -> WireClient:
    """The client for endpoint ``name``: a device with the cluster key, the cloud with its API key."""
    dispatcher = request.app[DISPATCHER]
    cloud = _clouds(dispatcher).get(name)
    if cloud is not None:
        key = cloud.api_key.get_secret_value() if cloud.api_key is not None else None
        return WireClient(dispatcher.session, str(cloud.url).rstrip("/").removesuffix("/v1"), api_key=key)
    rec = request.app[REGISTRY].devices.get(name)
    if rec is None or rec.state != "up":
        raise ApiError(404, f"endpoint: no device or cloud endpoint {name!r} is up", param="endpoint")
    return rec.client.wire


def add_routes(app: web.Application, registry: Registry, dispatcher: Dispatcher) -> None:
    app[REGISTRY] = registry
    app[DISPATCHER] = dispatcher
    app.router.add_get(ENDPOINTS_PATH, endpoints)
    app.router.add_post(RUN_PATH + "/{endpoint}", run)
