"""The coordinator's OpenAI-compatible front door (aiohttp).

``/v1/chat/completions`` and ``/v1/completions`` (SSE streaming or not, usage
filled; each served from a started live answer that DiSCo steers,
:mod:`coordinator.disco.runtime`), ``/v1/models`` (models with at least one
endpoint up), plus ``/v1/devices`` (the registry: devices with live
telemetry, cloud endpoints with their health), ``/v1/dora/plan`` and
``/v1/dora/run`` (:mod:`coordinator.dora.api`), ``/v1/circinus/endpoints`` and
``/v1/circinus/run/{endpoint}`` (:mod:`coordinator.circinus.api`), ``/health``
(devices up, each cloud endpoint's health) and ``/metrics``.  Client API keys
(``Authorization: Bearer``) guard every ``/v1/`` route; errors use OpenAI's JSON shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Literal

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from coordinator.circinus.api import add_routes as add_circinus_routes
from coordinator.cluster.metrics import CoordinatorMetrics
from coordinator.cluster.registry import Registry
from coordinator.cluster.views import EndpointsView, Health, ModelList, ServedModel
from coordinator.disco.policy import DiscoPolicy
from coordinator.disco.runtime import DiscoRuntime, tier_of
from coordinator.dora.api import add_routes as add_dora_routes
from coordinator.escalation.runtime import EscalationRuntime
from coordinator.streaming.dispatch import PIN_HEADER, Dispatcher
from coordinator.streaming.routes import Job
from edgeweave.config import DiscoConfig, EscalationConfig
from edgeweave.serving.api_keys import api_key_middleware
from edgeweave.serving.embeddings import LazyEmbedder, embeddings_response
from edgeweave.serving.http_errors import ApiError, error_middleware, parse_body
from edgeweave.serving.openai_serving import respond
from edgeweave.wire.embeddings import EmbeddingRequest
from edgeweave.wire.openai_api import ChatCompletionRequest, CompletionRequest, chat_messages
from edgeweave.wire.protocol import Message

log = logging.getLogger("edgeweave.coordinator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNBOUNDED_MAX_TOKENS = 1 << 20  # "no max_tokens given": the endpoint clamps to its context
MIGRATE_HEADER = "X-Edgeweave-Migrate-After"  # request header: move the answer after N tokens (tests, demos)
TIER_HEADER = "X-Edgeweave-Tier"  # response header: the tier the answer started on ("device" / "cloud")
ESCALATION_HEADER = "X-Edgeweave-Escalation"  # response header: kept / escalated / routed / moved
GATE_SCORE_HEADER = "X-Edgeweave-Gate-Score"  # response header: the escalation gate's score of the device answer
PLAN_HEADER = "X-Edgeweave-Plan"  # response header: DiSCo's plan ("device", "cloud", "race", "cloud-then-device", ...)


class CoordinatorState:
    def __init__(
        self,
        api_keys: list[str],
        registry: Registry,
        dispatcher: Dispatcher,
        require_key: bool,
        disco: DiscoConfig,
        escalation: EscalationConfig | None = None,
        policy: Literal["disco", "escalation"] = "disco",
        embedder: str | None = None,
    ) -> None:
        self.api_keys = api_keys
        self.require_key = require_key
        self.registry = registry
        self.dispatcher = dispatcher
        self.metrics = CoordinatorMetrics()
        self.disco = DiscoRuntime(DiscoPolicy(disco), dispatcher, self.metrics)
        self.escalation = EscalationRuntime(escalation or EscalationConfig(), self.disco, dispatcher, self.metrics)
        self.policy = policy
        self.embedder = None if embedder is None else LazyEmbedder(embedder)


KEY = web.AppKey("coordinator", CoordinatorState)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    if request.path.startswith("/v1/"):
        request.app[KEY].metrics.requests.labels(request.path, str(resp.status)).inc()
    return resp


async def health(request: web.Request) -> web.Response:
    registry = request.app[KEY].registry
    clouds = [c.view() for c in sorted(registry.clouds.values(), key=lambda c: c.name)]
    body = Health(
        devices_up=sum(d.state == "up" for d in registry.devices.values()),
        cloud_up=sum(c.state == "up" for c in clouds),
        cloud=clouds,
    )
    return web.json_response(text=body.model_dump_json())


async def metrics(request: web.Request) -> web.Response:
    state = request.app[KEY]
    for s in ("up", "down"):
        state.metrics.devices.labels(s).set(sum(d.state == s for d in state.registry.devices.values()))
    return web.Response(body=generate_latest(state.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def models(request: web.Request) -> web.Response:
    served = request.app[KEY].dispatcher.models()
    body = ModelList(data=[ServedModel(id=name, endpoints=endpoints) for name, endpoints in sorted(served.items())])
    return web.json_response(text=body.model_dump_json())


async def devices(request: web.Request) -> web.Response:
    registry = request.app[KEY].registry
    body = EndpointsView(
        data=[r.view() for r in sorted(registry.devices.values(), key=lambda r: r.id)],
        cloud=[c.view() for c in sorted(registry.clouds.values(), key=lambda c: c.name)],
    )
    return web.json_response(text=body.model_dump_json())


def _max_tokens(dispatcher: Dispatcher, model: str, asked: int | None) -> tuple[int, bool]:
    """(max_tokens to send, whether to fill the context); refuses what no endpoint can hold."""
    ctx = dispatcher.max_context(model)
    if asked is None:
        return (ctx or UNBOUNDED_MAX_TOKENS), True
    if ctx is not None and asked >= ctx:
        raise ApiError(400, f"max_tokens: {asked} exceeds {model}'s context of {ctx} tokens", param="max_tokens")
    return asked, False


async def chat_completions(request: web.Request) -> web.StreamResponse:
    req = await parse_body(request, ChatCompletionRequest)
    return await _serve(request, _job(request, req, messages=chat_messages(req.messages)), req, chat=True)


async def completions(request: web.Request) -> web.StreamResponse:
    req = await parse_body(request, CompletionRequest)
    return await _serve(request, _job(request, req, prompt=req.prompt), req, chat=False)  # type: ignore[arg-type]


def _job(
    request: web.Request,
    req: ChatCompletionRequest | CompletionRequest,
    messages: list[Message] | None = None,
    prompt: str | list[int] | None = None,
) -> Job:
    max_tokens, fill = _max_tokens(request.app[KEY].dispatcher, req.model, req.max_tokens)
    return Job(
        req.model,
        req.sampling(max_tokens),
        messages=messages,
        prompt=prompt,
        fill_context=fill,
        pin=request.headers.get(PIN_HEADER),
        resume_tokens=tuple(req.resume_tokens),
        uncertainty=req.uncertainty,
    )


def _prompt_chars(job: Job) -> int | None:
    if job.messages is not None:
        return sum(len(m.content) for m in job.messages)
    return len(job.prompt) if isinstance(job.prompt, str) else None


async def _serve(
    request: web.Request, job: Job, req: ChatCompletionRequest | CompletionRequest, chat: bool
) -> web.StreamResponse:
    state = request.app[KEY]
    started = time.perf_counter()
    metrics = state.metrics
    forced_after = _migrate_after(request)
    escalate = req.prefer == "escalate" or (req.prefer == "auto" and state.policy == "escalation")
    if escalate and req.n > 1:
        raise ApiError(400, "n: an escalated answer has one choice", param="n")
    if req.uncertainty is not None and job.messages is None:
        raise ApiError(400, "uncertainty: scores need chat messages (use /v1/chat/completions)", param="uncertainty")
    metrics.in_flight.inc()
    try:
        async with AsyncExitStack() as stack:
            headers: dict[str, str] = {}
            if escalate:
                decision, answering = state.escalation.answer(job, _prompt_chars(job))
                answers = [await stack.enter_async_context(answering)]
                headers[ESCALATION_HEADER] = decision.outcome
                if decision.score is not None:
                    headers[GATE_SCORE_HEADER] = f"{decision.score:.6g}"
                plan = f"escalation:{decision.outcome}"
            else:
                prefer = "auto" if req.prefer == "escalate" else req.prefer
                answers = []
                for i in range(req.n):  # choice i sampled with seed + i, each its own answer (each may move)
                    seed = None if job.sampling.seed is None else job.sampling.seed + i
                    one = replace(job, sampling=job.sampling.model_copy(update={"seed": seed}))
                    if i > 0:
                        one = replace(one, uncertainty=None)  # the score is choice 0's
                    plan, answering = state.disco.answer(one, _prompt_chars(job), prefer, forced_after,
                                                         req.allow_cost_moves)  # fmt: skip
                    answers.append(await stack.enter_async_context(answering))
            first = answers[0]

            def on_token(first_token: bool) -> None:
                if first_token:
                    metrics.ttft.observe(time.perf_counter() - started)
                metrics.tokens.labels(first.endpoint).inc()

            headers |= {PIN_HEADER: first.endpoint, TIER_HEADER: tier_of(first.endpoint), PLAN_HEADER: plan}
            return await respond(
                request, answers, job.model, chat, req.stream, req.include_usage, on_token, headers,
                req.return_token_ids, req.parses_tool_calls,
            )  # fmt: skip
    finally:
        metrics.in_flight.dec()


async def embeddings(request: web.Request) -> web.Response:
    lazy = request.app[KEY].embedder
    if lazy is None:
        raise ApiError(404, "this coordinator serves no embeddings (embedder = none)", code="not_found")
    body = await embeddings_response(await parse_body(request, EmbeddingRequest), lazy)
    return web.json_response(text=body.model_dump_json())


def _migrate_after(request: web.Request) -> int | None:
    raw = request.headers.get(MIGRATE_HEADER)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"{MIGRATE_HEADER}: must be a positive number of tokens, got {raw!r}", param=MIGRATE_HEADER)
    return int(raw)


def create_app(state: CoordinatorState, max_body_bytes: int) -> web.Application:
    auth = api_key_middleware(state.api_keys if state.require_key else None)
    app = web.Application(middlewares=[count_requests, error_middleware, auth], client_max_size=max_body_bytes)
    app[KEY] = state
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/devices", devices)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    add_dora_routes(app, state.registry)
    add_circinus_routes(app, state.registry, state.dispatcher)
    return app
