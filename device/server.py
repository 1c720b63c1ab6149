"""The device daemon's HTTP API (aiohttp).

``/health`` and ``/metrics`` are open (probes, Prometheus); every ``/v1/``
route needs a cluster-signed request and its response is signed back (see
:mod:`edgeweave.wire.auth`).  ``POST /v1/generate`` streams server-sent events
(:mod:`edgeweave.wire.protocol`); ``POST /v1/prefill`` evaluates a context into the
model's prompt cache and generates nothing (a later ``generate`` of that context, or of it
plus tokens generated since, evaluates only what is new).

A ``generate`` with ``n`` > 1 runs ``n`` generations of one prompt (choice i seeded seed + i)
under one admission ticket of ``n`` places: they share the worker's batch slots (queued beyond
them) and its prompt cache, and their tokens stream interleaved, each carrying its ``choice``.
With ``uncertainty`` the device scores choice 0 once it has finished
(:func:`edgeweave.uncertainty.scoring.score` over a :class:`~device.uncertainty.WorkerSampler`
running under the same ticket) and the score comes in ``done``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass

import psutil
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

import edgeweave
from device.dora.routes import add_routes
from device.telemetry import TelemetrySampler
from device.uncertainty import SamplingCancelled, WorkerSampler
from device.worker import ModelWorker, QueueFull, Ticket
from edgeweave.config import DeviceConfig
from edgeweave.errors import UsageError
from edgeweave.generation.answer import TokenEvent
from edgeweave.generation.sampling import SamplingParams
from edgeweave.operators.routes import add_routes as add_operator_routes
from edgeweave.serving.embeddings import LazyEmbedder
from edgeweave.serving.emulated_link import link_from_env
from edgeweave.serving.http_errors import ApiError, error_middleware, parse_body
from edgeweave.uncertainty.samples import Embedder, last_user
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
from edgeweave.wire.uncertainty import UncertaintyScore

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
        self.embedder = None if cfg.embedder is None else LazyEmbedder(cfg.embedder)

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
    if req.messages is not None:
        return worker.chat_ids(req.messages, req.sampling.output if isinstance(req, GenerateRequest) else None)
    if isinstance(req.prompt, str):
        return worker.backend.tokenizer.encode(req.prompt, add_bos=True)
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


def _places(state: DeviceState, worker: ModelWorker, req: GenerateRequest) -> int:
    """The places a generate request takes: its ``n`` choices, or as many of its score's samples as
    the slots run at once, whichever is more (checked: the worker can ever hold them)."""
    if req.n > worker.capacity:
        raise ApiError(
            400,
            f"n: {req.n} choices exceed what {worker.name} on {state.cfg.id} ever holds "
            f"({worker.slots} running + {worker.max_queue} queued)",
            param="n",
        )
    u = req.uncertainty
    if u is None:
        return req.n
    if state.cfg.embedder is None:
        message = f"uncertainty: {state.cfg.id} has no embedder configured (its embedder setting is empty)"
        raise ApiError(400, message, param="uncertainty")
    if req.messages is None:
        raise ApiError(
            400,
            "uncertainty: needs messages (the measure perturbs the last user message), not a raw prompt",
            param="uncertainty",
        )
    try:
        last_user(req.messages)
    except UsageError as e:
        raise ApiError(400, f"uncertainty: {e.problem}", param="uncertainty") from None
    return max(req.n, min(u.samples, worker.slots))


def _admit(state: DeviceState, worker: ModelWorker, request_id: str, places: int = 1) -> Ticket:
    if request_id in state.active:
        raise ApiError(400, f"request_id {request_id!r} is already running", param="request_id")
    try:
        ticket = worker.admit(places)
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
    places = _places(state, worker, req)
    prompt = await asyncio.to_thread(_prompt_ids, worker, req)  # a huge prompt must not stall the event loop
    sampling = _fit(worker, req, prompt)
    embedder = None if req.uncertainty is None or state.embedder is None else await state.embedder.get()
    ticket = _admit(state, worker, request_id, places)
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
        outcome = await _relay_tokens(request, resp, worker, ticket, prompt, _Choices(req, sampling, embedder))
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


@dataclass(frozen=True)
class _Choices:
    """What a generate request asks for beyond its prompt: checked sampling, ``n``, the score."""

    req: GenerateRequest
    sampling: SamplingParams
    embedder: Embedder | None  # loaded when the request asks for a score

    def sampling_of(self, choice: int) -> SamplingParams:
        seed = self.sampling.seed
        return self.sampling if seed is None else self.sampling.model_copy(update={"seed": seed + choice})


async def _relay_tokens(
    request: web.Request,
    resp: web.StreamResponse,
    worker: ModelWorker,
    ticket: Ticket,
    prompt: list[int],
    choices: _Choices,
) -> str:
    """Stream every choice's tokens (interleaved) then ``done``; return the outcome for the metrics."""
    state = request.app[KEY]
    resume = choices.req.resume_tokens
    n = choices.req.n
    streams = [worker.stream(ticket, prompt, choices.sampling_of(i), resume) for i in range(n)]
    watcher = asyncio.get_running_loop().create_task(_watch_disconnect(request, ticket.cancel))
    last: list[TokenEvent | None] = [None] * n
    answer0: list[str] = []  # choice 0's text, for its score
    scoring_task: asyncio.Task[UncertaintyScore | None] | None = None
    try:
        async with aclosing(_interleave(streams)) as events:
            async for choice, ev in events:
                if ev is None:  # that choice ended
                    if choice == 0 and choices.embedder is not None and not ticket.cancel.is_set():
                        text = worker.backend.tokenizer.decode(resume) + "".join(answer0)
                        scoring_task = asyncio.get_running_loop().create_task(_score(worker, ticket, choices, text))
                    continue
                await _send_token(state, resp, worker, choice, ev)
                if choice == 0:
                    answer0.append(ev.text)
                last[choice] = ev
        score = None if scoring_task is None else await scoring_task
    except ConnectionResetError:
        ticket.cancel.set()
        return "cancelled"
    except Exception as e:  # the stream has started: report in-band, keep serving
        log.exception("generation failed on %s", worker.name)
        await _send(resp, ErrorEvent(error=ErrorBody(message=f"generation failed: {e}", type="server_error")))
        return "error"
    finally:
        watcher.cancel()
        if scoring_task is not None and not scoring_task.done():
            ticket.cancel.set()  # its samples stop at the next step
            await asyncio.gather(scoring_task, return_exceptions=True)
    first = ticket.generations[0]
    finish = ["cancelled" if ev is None or ev.finish_reason is None else ev.finish_reason for ev in last]
    done = DoneEvent(
        finish_reason=finish[0],
        prompt_tokens=len(prompt) + len(resume),
        completion_tokens=sum(0 if ev is None else ev.index + 1 for ev in last),
        ttft_s=first.ttft_s,
        decode_tok_s=first.decode_tok_s,
        energy_j=worker.energy_j(ticket.busy_s),  # every choice's and the score's samples'
        cached_tokens=first.cached_tokens,
        finish_reasons=finish if n > 1 else [],
        uncertainty=score,
    )
    try:
        await _send(resp, done)
        await resp.write_eof()
    except ConnectionResetError:
        return "cancelled"
    return "cancelled" if "cancelled" in finish else "completed"


async def _send_token(
    state: DeviceState, resp: web.StreamResponse, worker: ModelWorker, choice: int, ev: TokenEvent
) -> None:
    t = round(ev.elapsed_s, 6)
    message = TokenMessage(index=ev.index, id=ev.token_id, text=ev.text, t=t, logprob=ev.logprob, choice=choice)
    await _send(resp, message)
    state.metrics.tokens.labels(worker.name).inc()
    if choice == 0 and ev.index == 0:
        state.metrics.ttft.labels(worker.name).observe(ev.elapsed_s)


async def _score(worker: ModelWorker, ticket: Ticket, choices: _Choices, answer: str) -> UncertaintyScore | None:
    """Choice 0's uncertainty (None when the request is cancelled meanwhile)."""
    from edgeweave.uncertainty import scoring  # the measures load with the first score, not with the daemon

    req, u = choices.req, choices.req.uncertainty
    assert u is not None and req.messages is not None and choices.embedder is not None
    if u.seed is None and choices.sampling.seed is not None:
        u = u.model_copy(update={"seed": choices.sampling.seed})  # the extra samples' default: the request's seed
    try:
        return await scoring.score(req.messages, u, WorkerSampler(worker, ticket), choices.embedder, answer=answer)
    except SamplingCancelled:
        return None


async def _interleave(streams: list[AsyncIterator[TokenEvent]]) -> AsyncIterator[tuple[int, TokenEvent | None]]:
    """The streams' events as they come, each with its stream's index; ``(i, None)`` when stream i ends.
    A stream's failure is raised here; the others are then stopped."""
    queue: asyncio.Queue[tuple[int, TokenEvent | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, stream: AsyncIterator[TokenEvent]) -> None:
        try:
            async for ev in stream:
                queue.put_nowait((i, ev))
            queue.put_nowait((i, None))
        except Exception as e:  # noqa: BLE001 - handed to the consumer
            queue.put_nowait((i, e))

    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        for _ in streams:
            while True:
                i, item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield i, item
                if item is None:
                    break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
