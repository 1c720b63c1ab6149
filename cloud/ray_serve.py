"""Scale-out: N cloud engine replicas behind one Ray Serve route.

Each replica is a Ray actor holding its own engine (model, KV cache, engine
thread); Ray Serve's HTTP proxy spreads requests over them.  A replica
answers the same OpenAI-compatible paths as ``cloud/server.py`` through the
same request checks (:func:`cloud.server.open_answer`) and response writers
(:mod:`edgeweave.serving.openai_serving`); answers carry ``X-Edgeweave-Replica``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from cloud.engine.async_engine import AsyncEngine
from cloud.engine.engine import LLMEngine
from cloud.server import CloudState, EngineAnswer, open_answer
from edgeweave.config import CloudServerConfig, RayOptions
from edgeweave.errors import UsageError
from edgeweave.serving.api_keys import check_api_key
from edgeweave.serving.http_errors import ApiError, parse_json
from edgeweave.serving.openai_serving import collect, sse_chunks
from edgeweave.wire.openai_api import ChatCompletionRequest, CompletionRequest

APP_NAME = "edgeweave-cloud"
REPLICA_HEADER = "X-Edgeweave-Replica"


@serve.deployment
class CloudReplica:
    def __init__(self, cfg_json: str, api_keys: list[str] | None) -> None:
        cfg = CloudServerConfig.model_validate_json(cfg_json)
        engine = AsyncEngine(LLMEngine.load(cfg.model, cfg.engine))
        engine.start()
        self.state = CloudState(engine, cfg.name, cfg.default_slo)
        self.keys = api_keys
        self.replica = serve.get_replica_context().replica_id.unique_id

    async def __call__(self, request: Request) -> Response:
        headers = {REPLICA_HEADER: self.replica}
        try:
            return await self._route(request, headers)
        except ApiError as e:
            return JSONResponse({"error": e.body.model_dump()}, status_code=e.status, headers={**headers, **e.headers})
        except UsageError as e:
            err = ApiError(400, str(e), param=e.field)
            return JSONResponse({"error": err.body.model_dump()}, status_code=400, headers=headers)

    async def _route(self, request: Request, headers: dict[str, str]) -> Response:
        path = request.url.path.rstrip("/")
        check_api_key(self.keys, path, request.headers.get("authorization", ""))
        state = self.state
        if path == "/health":
            return JSONResponse({"status": "ok", "running": state.engine.snapshot.running}, headers=headers)
        if path == "/v1/models":
            card = {"id": state.name, "object": "model", "created": 0, "owned_by": "edgeweave"}
            return JSONResponse({"object": "list", "data": [card]}, headers=headers)
        kinds = {"/v1/chat/completions": ChatCompletionRequest, "/v1/completions": CompletionRequest}
        if path not in kinds or request.method != "POST":
            raise ApiError(404, f"no route {request.method} {path}")
        req = parse_json(await request.body(), kinds[path])
        chat = path.endswith("chat/completions")
        answer = await open_answer(state, req)
        if not req.stream:
            try:
                return JSONResponse(await collect(answer, state.name, chat, lambda first: None), headers=headers)
            finally:
                await answer.close()
        return StreamingResponse(
            _closing(answer, sse_chunks(answer, state.name, chat, req.include_usage, lambda first: None)),
            media_type="text/event-stream",
            headers=headers,
        )


async def _closing(answer: EngineAnswer, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await answer.close()  # the client left: abort on the engine


def deploy(cfg: CloudServerConfig, api_keys: list[str] | None, port: int) -> str:
    """Start (or join) Ray, run the replicas, return the route's base URL."""
    opts = cfg.ray or RayOptions()
    if not ray.is_initialized():
        if opts.address:
            ray.init(address=opts.address)
        else:
            need = opts.replicas * opts.cpus_per_replica
            ray.init(num_cpus=max(1, int(need + 0.999)), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": cfg.host, "port": port})
    replica = CloudReplica.options(
        num_replicas=opts.replicas,
        ray_actor_options={"num_cpus": opts.cpus_per_replica, "num_gpus": opts.gpus_per_replica},
    )
    serve.run(replica.bind(cfg.model_dump_json(), api_keys), name=APP_NAME, route_prefix="/")
    return f"http://{cfg.host}:{port}"


def shutdown() -> None:
    serve.shutdown()
    ray.shutdown()
