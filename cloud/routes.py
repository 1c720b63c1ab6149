"""The cloud's HTTP routes, free of any web framework: one table that the aiohttp server
(:mod:`cloud.server`) and the Ray Serve replicas (:mod:`cloud.ray_serve`) both mount, so both
answer the same paths the same way.

- ``POST /v1/chat/completions`` and ``/v1/completions`` (SSE or not; ``n`` choices; extensions:
  ``ignore_eos``, ``resume_tokens``, the tokens an earlier endpoint already generated, for
  migrated answers, ``return_token_ids``, ``slo``);
- ``GET /v1/models`` (the base and each LoRA adapter as ``<base>:<adapter>``, with the context
  length, ``max_model_len``), ``/health``, ``/metrics``
  (queue depth, running batch, KV blocks, prefix-cache hits, preemptions, TTFT and TBT
  histograms, Tempo's service gain and SLO goodput per request type);
- ``POST /v1/prefill``: evaluate a context (``prompt`` or ``messages``, plus ``resume_tokens``) into
  the prefix cache, generating nothing (:func:`cloud.service.prefill`; a migrated answer resumed
  here later prefills only the rest);
- ``POST /v1/circinus/run``: a Circinus operator placed on the cloud tier (the contract of
  :mod:`edgeweave.operators.routes`);
- ``POST /v1/embeddings`` with the configured sentence embedder, and the ``uncertainty``
  extension of chat requests (:mod:`cloud.uq.api`);
- with ``[cloud.tlora]``, the fine-tuning API under ``/v1/fine_tuning/jobs`` (:mod:`cloud.tlora.api`);
- ``POST /v1/audio/generations`` and ``GET /v1/audio/files/{id}``: text-to-audio served by
  SoundWeaver (:mod:`cloud.soundweaver.api`), unless ``[cloud.soundweaver] enabled = false``.

A framework hands :func:`handle` an :class:`HttpRequest` and writes the :class:`HttpResponse`
it gets back (a streamed body is an async iterator of SSE events; closing it, when the client
leaves, aborts the request on the engine).  :func:`handle` checks the API key, counts the
``/v1/`` requests and turns every refusal into the one JSON error shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cloud.service import CloudState, EngineAnswer, adapter_of, open_answers, prefill, served_models
from cloud.soundweaver import api as sound_api
from cloud.tlora import api as fine_tuning_api
from cloud.uq import api as uq_api
from edgeweave.errors import UsageError
from edgeweave.serving.api_keys import check_api_key
from edgeweave.serving.http_errors import ApiError, parse_json
from edgeweave.serving.openai_serving import collect, sse_chunks
from edgeweave.wire.openai_api import ChatCompletionRequest, CompletionRequest
from edgeweave.wire.protocol import PrefillRequest
from edgeweave.wire.sse import SSE_HEADERS
from edgeweave.wire.tensor_frames import CONTENT_TYPE as FRAMES

JSON = "application/json"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    authorization: str  # the Authorization header ("" without one)
    body: bytes
    query: str = ""  # the query string, undecoded


@dataclass
class HttpResponse:
    body: bytes | AsyncIterator[bytes]  # an iterator: SSE events, sent as they come
    status: int = 200
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[CloudState, HttpRequest], Awaitable[HttpResponse]]


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(json.dumps(body).encode(), status, JSON, headers or {})


async def health(state: CloudState, req: HttpRequest) -> HttpResponse:
    s = state.engine.snapshot
    return _json({"status": "ok", "running": s.running, "waiting": s.waiting})


async def metrics(state: CloudState, req: HttpRequest) -> HttpResponse:
    return HttpResponse(state.metrics_text(), content_type=CONTENT_TYPE_LATEST)


async def models(state: CloudState, req: HttpRequest) -> HttpResponse:
    ctx = state.engine.engine.context_length
    cards = [
        {"id": name, "object": "model", "created": 0, "owned_by": "edgeweave", "max_model_len": ctx}
        for name in served_models(state)
    ]
    return _json({"object": "list", "data": cards})


async def _closing(answers: list[EngineAnswer], chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
        for answer in answers:
            await answer.close()  # a client that left: the engine aborts the request and frees its blocks


async def _complete(state: CloudState, req: ChatCompletionRequest | CompletionRequest) -> HttpResponse:
    scorer = uq_api.scorer_for(state.uq, req, adapter_of(state, req.model))
    answers = await open_answers(state, req, scorer)
    chat = isinstance(req, ChatCompletionRequest)
    if not req.stream:
        try:
            return _json(await collect(answers, req.model, chat, lambda first: None, req.parses_tool_calls))
        finally:
            for answer in answers:
                await answer.close()
    chunks = sse_chunks(
        answers, req.model, chat, req.include_usage, lambda first: None, req.return_token_ids, req.parses_tool_calls
    )
    return HttpResponse(_closing(answers, chunks), content_type=SSE_HEADERS["Content-Type"], headers=SSE_HEADERS)


async def chat_completions(state: CloudState, req: HttpRequest) -> HttpResponse:
    return await _complete(state, parse_json(req.body, ChatCompletionRequest))


async def completions(state: CloudState, req: HttpRequest) -> HttpResponse:
    return await _complete(state, parse_json(req.body, CompletionRequest))


async def prefill_context(state: CloudState, req: HttpRequest) -> HttpResponse:
    result = await prefill(state, parse_json(req.body, PrefillRequest))
    return HttpResponse(result.model_dump_json().encode())


async def circinus_run(state: CloudState, req: HttpRequest) -> HttpResponse:
    return HttpResponse(await state.operators.run(req.body), content_type=FRAMES)


async def embeddings(state: CloudState, req: HttpRequest) -> HttpResponse:
    """``/v1/embeddings`` (with an embedder configured)."""
    return HttpResponse((await uq_api.embeddings(state.uq, req.body)).model_dump_json().encode())


async def fine_tuning(state: CloudState, req: HttpRequest) -> HttpResponse:
    """``/v1/fine_tuning/jobs...`` (tLoRA, mounted with ``[cloud.tlora]``)."""
    assert state.tlora is not None
    path = req.path.rstrip("/")
    answer = await fine_tuning_api.answer(state.tlora, req.method, path, req.query, req.body)
    return HttpResponse(answer.model_dump_json().encode())


async def audio(state: CloudState, req: HttpRequest) -> HttpResponse:
    """``/v1/audio/...`` (SoundWeaver)."""
    assert state.sound is not None
    reply = await sound_api.answer(state.sound, req.method, req.path.rstrip("/"), req.body)
    return HttpResponse(reply.body, content_type=reply.content_type, headers=reply.headers)


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/health"): health,
    ("GET", "/metrics"): metrics,
    ("GET", "/v1/models"): models,
    ("POST", "/v1/chat/completions"): chat_completions,
    ("POST", "/v1/completions"): completions,
    ("POST", "/v1/prefill"): prefill_context,
    ("POST", "/v1/circinus/run"): circinus_run,
}


def _route(state: CloudState, method: str, path: str) -> Handler:
    if state.tlora is not None and fine_tuning_api.owns(path):
        return fine_tuning
    if uq_api.owns(state.uq, method, path):
        return embeddings
    if sound_api.owns(state.sound, method, path):
        return audio
    handler = ROUTES.get((method, path))
    if handler is None:
        if any(p == path for _, p in ROUTES):
            raise ApiError(405, f"{method} is not allowed on {path}")
        raise ApiError(404, f"no route {method} {path}")
    return handler


async def handle(state: CloudState, api_keys: list[str] | None, req: HttpRequest) -> HttpResponse:
    """``req`` answered by its route (``api_keys=None``: no key required)."""
    path = req.path.rstrip("/") or "/"
    try:
        check_api_key(api_keys, path, req.authorization)
        resp = await _route(state, req.method, path)(state, req)
    except ApiError as e:
        resp = _json({"error": e.body.model_dump()}, e.status, e.headers)
    except UsageError as e:
        resp = _json({"error": ApiError(400, str(e), param=e.field).body.model_dump()}, 400)
    if path.startswith("/v1/"):
        label = fine_tuning_api.metric_path(path) if fine_tuning_api.owns(path) else sound_api.metric_path(path)
        state.metrics.requests.labels(label, str(resp.status)).inc()
    return resp
