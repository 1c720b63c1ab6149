"""``edgeweave cloud serve``: the cloud engine behind an OpenAI-compatible API.

``/v1/chat/completions`` and ``/v1/completions`` (SSE or not; extensions:
``ignore_eos`` and ``resume_tokens``, the tokens an earlier endpoint already
generated, for migrated answers), ``/v1/models``, ``/health`` and
``/metrics`` (queue depth, running batch, KV blocks, prefix-cache hits,
preemptions, TTFT and TBT histograms, and Tempo's service gain and SLO
goodput per request type).  Requests may carry an ``slo`` extension object
(:mod:`edgeweave.wire.slo`); without one they are latency-sensitive with the
configured ``default_slo``.  The coordinator registers it as a
cloud endpoint like any OpenAI-compatible URL.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cloud.engine.async_engine import AsyncEngine, EngineFailed
from cloud.engine.engine import LLMEngine, TokenOutput
from cloud.tempo.gain import GainLedger
from edgeweave.config import CloudServerConfig, EdgeweaveConfig
from edgeweave.data.traces import TraceWriter
from edgeweave.models.tokenizer import ChatMessage
from edgeweave.operators.routes import add_routes as add_operator_routes
from edgeweave.serving.api_keys import api_key_middleware, new_api_key
from edgeweave.serving.emulated_link import link_from_env
from edgeweave.serving.http_errors import ApiError, error_middleware, parse_body
from edgeweave.serving.openai_serving import Answer, AnswerFailed, Delta, respond
from edgeweave.serving.service import READY_PREFIX, announce, serve_until_signal, stop_on_signal
from edgeweave.wire.openai_api import ChatCompletionRequest, CompletionRequest
from edgeweave.wire.slo import SLO_TYPES, AnySlo, LatencySLO

log = logging.getLogger("edgeweave.cloud")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class CloudMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("edgeweave_cloud_requests", "API requests", ["path", "status"], registry=r)
        self.tokens = Counter("edgeweave_cloud_generated_tokens", "Tokens generated", registry=r)
        self.queue = Gauge("edgeweave_cloud_queue_depth", "Requests waiting for their first iteration", registry=r)
        self.running = Gauge("edgeweave_cloud_running", "Requests in the running batch", registry=r)
        self.swapped = Gauge("edgeweave_cloud_swapped", "Requests swapped out to host memory", registry=r)
        self.blocks_used = Gauge("edgeweave_cloud_kv_blocks_used", "KV cache blocks in use", registry=r)
        self.blocks_total = Gauge("edgeweave_cloud_kv_blocks_total", "KV cache blocks", registry=r)
        self.prefix_hits = Gauge(
            "edgeweave_cloud_prefix_hit_blocks", "KV blocks reused from the prefix cache", registry=r
        )
        self.preemptions = Gauge("edgeweave_cloud_preemptions", "Sequences preempted so far", registry=r)
        self.gain = Gauge("edgeweave_cloud_service_gain_tokens", "Useful tokens under their SLO", ["type"], registry=r)
        self.delivered = Gauge("edgeweave_cloud_delivered_tokens", "Tokens of judged requests", ["type"], registry=r)
        self.slo_met = Gauge("edgeweave_cloud_slo_met", "Requests (workflows) whose SLO was met", ["type"], registry=r)
        self.slo_judged = Gauge("edgeweave_cloud_slo_judged", "Requests (workflows) judged", ["type"], registry=r)
        self.ttft = Histogram(
            "edgeweave_cloud_ttft_seconds", "Time to first token", buckets=LATENCY_BUCKETS, registry=r
        )
        self.tbt = Histogram("edgeweave_cloud_tbt_seconds", "Time between tokens", buckets=LATENCY_BUCKETS, registry=r)


class CloudState:
    def __init__(
        self,
        engine: AsyncEngine,
        served_name: str,
        default_slo: LatencySLO | None = None,
        request_log: TraceWriter | None = None,
    ) -> None:
        self.engine = engine
        self.request_log = request_log
        self.name = served_name
        self.metrics = CloudMetrics()
        self.default_slo = default_slo or LatencySLO()
        self.ledger = GainLedger()


KEY = web.AppKey("cloud", CloudState)


class EngineAnswer(Answer):
    """A request streaming out of the engine, as text deltas."""

    def __init__(self, state: CloudState, stream: AsyncIterator[TokenOutput], slo: AnySlo) -> None:
        super().__init__(f"engine:{state.name}")
        self._stream = stream
        self._metrics = state.metrics
        self._ledger = state.ledger
        self._log = state.request_log
        self._slo = slo
        self._first: TokenOutput | None = None
        self._started = time.perf_counter()
        self._token_times: list[float] = []
        self._ledger.arrive(slo, self._started)

    async def start(self) -> None:
        """Wait for the first token: bad input surfaces here, before any response is sent."""
        self._first = await anext(self._stream)
        self._token_times.append(time.perf_counter())
        self._metrics.ttft.observe(self._token_times[0] - self._started)

    async def deltas(self) -> AsyncIterator[Delta]:
        assert self._first is not None
        last = time.perf_counter()
        out: TokenOutput | None = self._first
        try:
            while out is not None:
                self.prompt_tokens = out.prompt_tokens
                self.completion_tokens = out.index + 1
                self._metrics.tokens.inc()
                if out.finish_reason:
                    self.finish_reason = out.finish_reason
                    self._ledger.finish(self._slo, self._started, self._token_times)
                    if self._log is not None:
                        self._log.append(datetime.now(), out.prompt_tokens, out.index + 1)
                yield Delta(out.text, out.token_id)
                if out.finish_reason:
                    return
                out = await anext(self._stream, None)
                now = time.perf_counter()
                self._token_times.append(now)
                self._metrics.tbt.observe(now - last)
                last = now
        except EngineFailed as e:
            raise AnswerFailed(str(e)) from None
        raise AnswerFailed("the engine ended the stream early")

    async def close(self) -> None:
        await self._stream.aclose()  # type: ignore[attr-defined]


@web.middleware
async def count_requests(request: web.Request, handler: object) -> web.StreamResponse:
    resp = await handler(request)  # type: ignore[operator]
    if request.path.startswith("/v1/"):
        request.app[KEY].metrics.requests.labels(request.path, str(resp.status)).inc()
    return resp


async def health(request: web.Request) -> web.Response:
    s = request.app[KEY].engine.snapshot
    return web.json_response({"status": "ok", "running": s.running, "waiting": s.waiting})


async def metrics(request: web.Request) -> web.Response:
    state = request.app[KEY]
    s, m = state.engine.snapshot, state.metrics
    m.queue.set(s.waiting)
    m.running.set(s.running)
    m.swapped.set(s.swapped)
    m.blocks_total.set(s.blocks_total)
    m.blocks_used.set(s.blocks_total - s.blocks_free)
    m.prefix_hits.set(s.prefix_hit_blocks)
    m.preemptions.set(s.preemptions)
    ledger = state.ledger
    for kind in SLO_TYPES:
        m.gain.labels(kind).set(ledger.gain[kind])
        m.delivered.labels(kind).set(ledger.tokens[kind])
        m.slo_met.labels(kind).set(ledger.met[kind])
        m.slo_judged.labels(kind).set(ledger.judged[kind])
    return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def models(request: web.Request) -> web.Response:
    state = request.app[KEY]
    card = {
        "id": state.name,
        "object": "model",
        "created": 0,
        "owned_by": "edgeweave",
        "max_model_len": state.engine.engine.context_length,
    }
    return web.json_response({"object": "list", "data": [card]})


def _prompt(state: CloudState, req: ChatCompletionRequest | CompletionRequest) -> tuple[list[int], str]:
    tok = state.engine.engine.tokenizer
    if isinstance(req, ChatCompletionRequest):
        messages = [m.to_message() for m in req.messages]
        return tok.render_chat([ChatMessage(m.role, m.content) for m in messages]), "messages"
    if isinstance(req.prompt, str):
        return tok.encode(req.prompt, add_bos=True), "prompt"
    return list(req.prompt), "prompt"


async def open_answer(state: CloudState, req: ChatCompletionRequest | CompletionRequest) -> EngineAnswer:
    """Check ``req`` against the model and start it on the engine (any front end)."""
    if req.model != state.name:
        raise ApiError(404, f"model {req.model!r} is not served here (serving {state.name})", param="model")
    prompt, field = _prompt(state, req)
    ctx = state.engine.engine.context_length
    used = len(prompt) + len(req.resume_tokens)
    if used >= ctx:
        raise ApiError(400, f"{field}: {used} tokens do not fit the model's context of {ctx} tokens", param=field)
    room = ctx - used
    if req.max_tokens is not None and req.max_tokens > room:
        raise ApiError(
            400,
            f"max_tokens: {used} prompt tokens + {req.max_tokens} new tokens exceed the context of {ctx} tokens "
            f"(at most {room} new tokens)",
            param="max_tokens",
        )
    params = req.sampling(req.max_tokens or room)
    slo = req.slo or state.default_slo
    stream = state.engine.generate(uuid.uuid4().hex, prompt, params, req.resume_tokens, extra=slo)
    answer = EngineAnswer(state, stream, slo)
    try:
        await answer.start()
    except BaseException:
        await answer.close()
        raise
    return answer


async def _complete(request: web.Request, req: ChatCompletionRequest | CompletionRequest) -> web.StreamResponse:
    state = request.app[KEY]
    answer = await open_answer(state, req)
    try:
        chat = isinstance(req, ChatCompletionRequest)
        return await respond(
            request, answer, state.name, chat, req.stream, req.include_usage, lambda first: None, None,
            req.return_token_ids,
        )  # fmt: skip
    finally:
        await answer.close()  # a client that left: the engine aborts the request and frees its blocks


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, await parse_body(request, ChatCompletionRequest))


async def completions(request: web.Request) -> web.StreamResponse:
    return await _complete(request, await parse_body(request, CompletionRequest))


def create_app(state: CloudState, api_keys: list[str] | None, max_body_bytes: int) -> web.Application:
    """``api_keys=None``: no key required."""
    middlewares = [*link_from_env(), count_requests, error_middleware, api_key_middleware(api_keys)]
    app = web.Application(middlewares=middlewares, client_max_size=max_body_bytes)
    app[KEY] = state
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    add_operator_routes(app)  # Circinus operators placed on the cloud tier
    return app


def build(cfg: CloudServerConfig, api_keys: list[str] | None) -> tuple[web.Application, AsyncEngine]:
    engine = AsyncEngine(LLMEngine.load(cfg.model, cfg.engine))
    log_to = TraceWriter(cfg.request_log) if cfg.request_log else None
    state = CloudState(engine, cfg.name, cfg.default_slo, log_to)
    return create_app(state, api_keys, int(cfg.max_body_mb * 2**20)), engine


async def serve_cloud(cfg: EdgeweaveConfig) -> None:
    c = cfg.cloud
    assert c is not None
    keys = [k.get_secret_value() for k in c.api_keys]
    generated = c.require_api_key and not keys
    if generated:
        keys = [new_api_key()]
    required = keys if c.require_api_key else None
    key_note = f" api-key: {keys[0]}" if generated else ""
    if c.ray is not None:
        from cloud.ray_serve import deploy, shutdown

        url = deploy(c, required, c.port)
        announce(f"{READY_PREFIX} cloud {url}{key_note}")
        log.info("cloud engine %s on Ray Serve: %d replicas at %s", c.name, c.ray.replicas, url)
        try:
            await stop_on_signal().wait()
        finally:
            shutdown()
        return
    app, engine = build(c, required)
    e = engine.engine

    async def ready(url: str) -> None:
        engine.start()
        announce(f"{READY_PREFIX} cloud {url}{key_note}")
        log.info(
            "cloud engine %s on %s: %s attention, %d KV blocks of %d tokens, device %s",
            c.name, url, e.runner.attention.name, e.blocks.num_blocks, e.blocks.block_size, e.device,
        )  # fmt: skip

    async def stop() -> None:
        engine.stop()

    await serve_until_signal(app, c.host, c.port, ready, stop)
