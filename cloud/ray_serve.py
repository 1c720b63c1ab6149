"""Scale-out: N cloud engine replicas behind one Ray Serve route.

Each replica is a Ray actor holding its own engine (model, KV cache, engine thread); Ray
Serve's HTTP proxy spreads requests over them.  A replica mounts the same framework-free routes
as the aiohttp server (:mod:`cloud.routes`: the OpenAI paths with every extension, token ids in
streamed chunks included, so a Ray-served answer can migrate; ``/v1/models``, ``/health``,
``/metrics``, the Circinus operator route); answers carry ``X-Edgeweave-Replica``.
"""

from __future__ import annotations

import logging

import ray
from ray import serve as ray_serve
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cloud.policies import check_config
from cloud.routes import HttpRequest, handle
from cloud.service import load_state
from edgeweave.config import CloudServerConfig, RayOptions
from edgeweave.serving.service import READY_PREFIX, announce, stop_on_signal

log = logging.getLogger("edgeweave.cloud")
APP_NAME = "edgeweave-cloud"
REPLICA_HEADER = "X-Edgeweave-Replica"


@ray_serve.deployment
class CloudReplica:
    def __init__(self, cfg_json: str, api_keys: list[str] | None) -> None:
        self.state = load_state(CloudServerConfig.model_validate_json(cfg_json))
        self.state.engine.start()
        self.keys = api_keys
        self.replica = ray_serve.get_replica_context().replica_id.unique_id

    async def __call__(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        req = HttpRequest(request.method, request.url.path, auth, await request.body())
        resp = await handle(self.state, self.keys, req)
        headers = {**resp.headers, REPLICA_HEADER: self.replica}
        if isinstance(resp.body, bytes):
            return Response(resp.body, resp.status, headers, media_type=resp.content_type)
        return StreamingResponse(resp.body, resp.status, headers, media_type=resp.content_type)


def deploy(cfg: CloudServerConfig, api_keys: list[str] | None, port: int) -> str:
    """Start (or join) Ray, run the replicas, return the route's base URL."""
    check_config(cfg)
    opts = cfg.ray or RayOptions()
    if not ray.is_initialized():
        if opts.address:
            ray.init(address=opts.address)
        else:
            need = opts.replicas * opts.cpus_per_replica
            ray.init(num_cpus=max(1, int(need + 0.999)), include_dashboard=False, log_to_driver=False)
    ray_serve.start(http_options={"host": cfg.host, "port": port})
    replica = CloudReplica.options(
        num_replicas=opts.replicas,
        ray_actor_options={"num_cpus": opts.cpus_per_replica, "num_gpus": opts.gpus_per_replica},
    )
    ray_serve.run(replica.bind(cfg.model_dump_json(), api_keys), name=APP_NAME, route_prefix="/")
    return f"http://{cfg.host}:{port}"


def shutdown() -> None:
    ray_serve.shutdown()
    ray.shutdown()


async def serve(c: CloudServerConfig, api_keys: list[str] | None, key_note: str) -> None:
    """Deploy, announce, and serve until SIGINT/SIGTERM (``api_keys=None``: no key required)."""
    assert c.ray is not None
    url = deploy(c, api_keys, c.port)
    announce(f"{READY_PREFIX} cloud {url}{key_note}")
    log.info("cloud engine %s on Ray Serve: %d replicas at %s", c.name, c.ray.replicas, url)
    try:
        await stop_on_signal().wait()
    finally:
        shutdown()
