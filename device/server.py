"""The device daemon's HTTP API (aiohttp).

``/health`` and ``/metrics`` are open (probes, Prometheus); every ``/v1/``
route needs a cluster-signed request and its response is signed back (see
:mod:`edgeweave.wire.auth`).  ``POST /v1/generate`` streams server-sent events
(:mod:`edgeweave.wire.protocol`); ``POST /v1/prefill`` evaluates a context into the
model's prompt cache and generates nothing (a later ``generate`` of that context, or of it
plus tokens generated since, evaluates only what is new).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

import psutil
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

import edgeweave
from device.dora.routes import add_routes
from device.telemetry import TelemetrySampler
from device.worker import ModelWorker, QueueFull, Ticket
from edgeweave.config import DeviceConfig
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.tokenizer import ChatMessage
from edgeweave.operators.routes import add_routes as add_operator_routes
from edgeweave.serving.emulated_link import link_from_env
from edgeweave.serving.http_errors import ApiError, error_middleware, parse_body
from edgeweave.wire import sse
from edgeweave.wire.auth import (
    HEADER_NONCE,
    HEADER_RESPONSE_SIGNATURE,
    STREAM_BODY,
    AuthError,
    ClusterKey,
    RequestVerifier,
)
from edgeweave.wire.protocol import (
    DeviceInfo,
    DoneEvent,
    ErrorBody,
    ErrorEvent,
    GenerateRequest,
    PrefillRequest,
    PrefillResult,
    StartEvent,
    TokenMessage,
)

log = logging.getLogger("edgeweave.device")
MAX_BODY_BYTES = 64 * 2**20
DISCONNECT_POLL_S = 0.25

KEY = web.AppKey("device", "DeviceState")


class DeviceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "edgeweave_device_requests", "Generate requests by outcome", ["model", "outcome"], registry=r
        )
        self.tokens = Counter("edgeweave_device_tokens_generated", "Tokens generated", ["model"], registry=r)
        self.queue = Gauge("edgeweave_device_in_system", "Requests running or queued", ["model"], registry=r)
        self.ttft = Histogram(
            "edgeweave_device_ttft_seconds", "Time to first token on the device", ["model"], registry=r
        )
        self.energy = Gauge("edgeweave_device_energy_joules", "Estimated energy since start", registry=r)


class DeviceState:
    def __init__(self, cfg: DeviceConfig, key: ClusterKey, workers: list[ModelWorker]) -> None:
        self.cfg = cfg
        self.key = key
        self.verifier = RequestVerifier(key)
        self.workers = {w.name: w for w in workers}
        self.default_model = workers[0].name
        self.telemetry = TelemetrySampler(cfg.id, cfg.power_model)
        self.metrics = DeviceMetrics()
        self.active: dict[str, threading.Event] = {}  # request id -> its cancel flag

    def info(self) -> DeviceInfo:
        return DeviceInfo(
            id=self.cfg.id,
            kind=self.cfg.kind,
            version=edgeweave.__version__,
            cores=os.cpu_count() or 1,
            memory_mb=psutil.virtual_memory().total / 2**20,
            models=[w.info() for w in self.workers.values()],
            power_idle_w=self.cfg.power_model.idle_w,
            power_max_w=self.cfg.power_model.max_w,
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def cluster_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)
    state = request.app[KEY]
    body = await request.read()
    try:
        request["nonce"] = state.verifier.verify(request.method, request.path_qs, request.headers, body, time.time())
    except AuthError as e:
        log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote, e.reason)
        raise ApiError(e.status, e.reason, code="cluster_auth") from None
    return await handler(request)


async def sign_response(request: web.Request, response: web.StreamResponse) -> None:
    nonce = request.get("nonce") or request.headers.get(HEADER_NONCE)
    if nonce is None or not request.path.startswith("/v1/"):
        return
    body = response.body if isinstance(response, web.Response) else None
    payload = body if isinstance(body, bytes) else STREAM_BODY
    response.headers[HEADER_RESPONSE_SIGNATURE] = request.app[KEY].key.sign_response(nonce, response.status, payload)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "device": request.app[KEY].cfg.id})


async def metrics(request: web.Request) -> web.Response:
    state = request.app[KEY]
    state.metrics.energy.set(state.telemetry.energy_j)
    for name, w in state.workers.items():
        state.metrics.queue.labels(name).set(w.in_system)
    return web.Response(body=generate_latest(state.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def info(request: web.Request) -> web.Response:
    return web.json_response(request.app[KEY].info().model_dump())


async def telemetry(request: web.Request) -> web.Response:
    state = request.app[KEY]
    return web.json_response(state.telemetry.snapshot(list(state.workers.values())).model_dump())


async def cancel(request: web.Request) -> web.Response:
    request_id = request.match_info["id"]
    flag = request.app[KEY].active.get(request_id)
    if flag is None:
        raise ApiError(404, f"no running request {request_id!r}", param="id")
    flag.set()
    return web.json_response({"id": request_id, "cancelled": True})


def _worker(state: DeviceState, model: str | None) -> ModelWorker:
    name = model or state.default_model
    worker = state.workers.get(name)
    if worker is None:
        raise ApiError(404, f"model {name!r} is not served here (serving {', '.join(state.workers)})", param="model")
    return worker


def _prompt_ids(worker: ModelWorker, req: GenerateRequest | PrefillRequest) -> list[int]:
    tok = worker.backend.tokenizer
    if req.messages is not None:
        return tok.render_chat([ChatMessage(m.role, m.content) for m in req.messages])
    if isinstance(req.prompt, str):
        return tok.encode(req.prompt, add_bos=True)
    assert req.prompt is not None
    return list(req.prompt)


def _room(worker: ModelWorker, req: GenerateRequest | PrefillRequest, prompt: list[int]) -> int:
    """Tokens left in the context after prompt + resume tokens (checked: at least one)."""
    ctx = worker.backend.context_length
    used = len(prompt) + len(req.resume_tokens)
    field = "messages" if req.messages is not None else "prompt"
    worker.backend.check_ids(prompt, field)
    worker.backend.check_ids(req.resume_tokens, "resume_tokens")
    if used >= ctx:
        raise ApiError(400, f"{field}: {used} prompt tokens do not fit {worker.name}'s context of {ctx}", param=field)
    return ctx - used


def _fit(worker: ModelWorker, req: GenerateRequest, prompt: list[int]) -> SamplingParams:
    """The request's sampling parameters once checked against the context."""
    room = _room(worker, req, prompt)
    if req.sampling.max_tokens <= room:
        return req.sampling
    if req.clamp_max_tokens:
        return req.sampling.model_copy(update={"max_tokens": room})
    used = worker.backend.context_length - room
    raise ApiError(
        400,
        f"sampling.max_tokens: {used} prompt tokens + {req.sampling.max_tokens} new tokens exceed "
        f"{worker.name}'s context of {worker.backend.context_length} (at most {room} new tokens)",
        param="sampling.max_tokens",
    )


def _admit(state: DeviceState, worker: ModelWorker, request_id: str) -> Ticket:
    if request_id in state.active:
        raise ApiError(400, f"request_id {request_id!r} is already running", param="request_id")
    try:
        ticket = worker.admit()
    except QueueFull as e:
        state.metrics.requests.labels(worker.name, "rejected").inc()
        raise ApiError(
            429,
            f"{worker.name} on {state.cfg.id}: {e}",
            code="queue_full",
            headers={"Retry-After": str(e.retry_after_s)},
        ) from None
    state.active[request_id] = ticket.cancel
    return ticket


async def generate(request: web.Request) -> web.StreamResponse:
    state = request.app[KEY]
    req = await parse_body(request, GenerateRequest)
    worker = _worker(state, req.model)
    model = worker.name
    request_id = req.request_id or uuid.uuid4().hex
    prompt = await asyncio.to_thread(_prompt_ids, worker, req)  # a huge prompt must not stall the event loop
    sampling = _fit(worker, req, prompt)
    ticket = _admit(state, worker, request_id)
    outcome = "error"
    try:
        resp = await sse.open_stream(request)
        start = StartEvent(
            id=request_id,
            model=model,
            device=state.cfg.id,
            backend=worker.backend.name,
            prompt_tokens=len(prompt) + len(req.resume_tokens),
        )
        await _send(resp, start)
        outcome = await _relay_tokens(request, resp, worker, ticket, prompt, sampling, req.resume_tokens)
        return resp
    except (asyncio.CancelledError, ConnectionResetError):  # the client went away
        outcome = "cancelled"
        raise
    finally:
        worker.release(ticket)
        del state.active[request_id]
        state.metrics.requests.labels(model, outcome).inc()


async def prefill(request: web.Request) -> web.Response:
    """Warm the prompt cache with a context; answers :class:`PrefillResult`."""
    state = request.app[KEY]
    req = await parse_body(request, PrefillRequest)
    worker = _worker(state, req.model)
    request_id = req.request_id or uuid.uuid4().hex
    prompt = await asyncio.to_thread(_prompt_ids, worker, req)
    _room(worker, req, prompt)
    ticket = _admit(state, worker, request_id)
    try:
        stats = await worker.prefill(ticket, prompt, req.resume_tokens)
    finally:
        worker.release(ticket)
        del state.active[request_id]
    if ticket.cancel.is_set() and stats.prefill_s == 0 and stats.cached_tokens < stats.prompt_tokens:
        raise ApiError(409, f"prefill {request_id!r} was cancelled before it ran", param="request_id")
    result = PrefillResult(
        model=worker.name,
        prompt_tokens=stats.prompt_tokens,
        cached_tokens=stats.cached_tokens,
        prefill_s=stats.prefill_s,
        energy_j=worker.energy_j(stats.busy_s),
    )
    return web.json_response(result.model_dump())


async def _relay_tokens(
    request: web.Request,
    resp: web.StreamResponse,
    worker: ModelWorker,
    ticket: Ticket,
    prompt: list[int],
    sampling: SamplingParams,
    resume: list[int],
) -> str:
    """Stream tokens then ``done``; return the outcome for the metrics."""
    state = request.app[KEY]
    tokens = worker.stream(ticket, prompt, sampling, resume)
    watcher = asyncio.get_running_loop().create_task(_watch_disconnect(request, ticket.cancel))
    last = None
    try:
        async for ev in tokens:
            t = round(ev.elapsed_s, 6)
            await _send(resp, TokenMessage(index=ev.index, id=ev.token_id, text=ev.text, t=t, logprob=ev.logprob))
            state.metrics.tokens.labels(worker.name).inc()
            if ev.index == 0:
                state.metrics.ttft.labels(worker.name).observe(ev.elapsed_s)
            last = ev
    except ConnectionResetError:
        ticket.cancel.set()
        return "cancelled"
    except Exception as e:  # the stream has started: report in-band, keep serving
        log.exception("generation failed on %s", worker.name)
        await _send(resp, ErrorEvent(error=ErrorBody(message=f"generation failed: {e}", type="server_error")))
        return "error"
    finally:
        watcher.cancel()
        await tokens.aclose()
    stats = ticket.stats
    finish = "cancelled" if last is None or last.finish_reason is None else last.finish_reason
    done = DoneEvent(
        finish_reason=finish,
        prompt_tokens=len(prompt) + len(resume),
        completion_tokens=0 if last is None else last.index + 1,
        ttft_s=stats.ttft_s,
        decode_tok_s=stats.decode_tok_s,
        energy_j=worker.energy_j(stats.busy_s),
        cached_tokens=stats.cached_tokens,
    )
    try:
        await _send(resp, done)
        await resp.write_eof()
    except ConnectionResetError:
        return "cancelled"
    return "cancelled" if finish == "cancelled" else "completed"


async def _watch_disconnect(request: web.Request, cancel: threading.Event) -> None:
    """Cancel the generation when the client goes away, even while it is queued."""
    while not cancel.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            cancel.set()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


async def _send(resp: web.StreamResponse, event: StartEvent | TokenMessage | DoneEvent | ErrorEvent) -> None:
    await resp.write(sse.encode(event.model_dump_json(), event.event))


async def _start_background(app: web.Application) -> None:
    app[KEY].telemetry.start()


async def _stop_background(app: web.Application) -> None:
    await app[KEY].telemetry.stop()


def create_app(cfg: DeviceConfig, key: ClusterKey, workers: list[ModelWorker]) -> web.Application:
    middlewares = [*link_from_env(), error_middleware, cluster_auth]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[KEY] = DeviceState(cfg, key, workers)
    app.on_response_prepare.append(sign_response)
    app.on_startup.append(_start_background)
    app.on_cleanup.append(_stop_background)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/info", info)
    app.router.add_get("/v1/telemetry", telemetry)
    app.router.add_post("/v1/generate", generate)
    app.router.add_post("/v1/prefill", prefill)
    app.router.add_post("/v1/cancel/{id}", cancel)
    add_routes(app, threads=max((m.threads or 0 for m in cfg.models), default=0) or None)
    add_operator_routes(app)
    return app
