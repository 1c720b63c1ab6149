"""OpenAI-shaped responses from a stream of text deltas, for every front door.

The coordinator (relaying a device or cloud endpoint) and the cloud server
(streaming from its engine) both hand an :class:`Answer` to :func:`respond`,
which writes a ``chat.completion`` / ``text_completion`` body or its SSE
chunks (role first, then content, then the finish reason, the optional usage
chunk and ``[DONE]``).  Deltas that carry a logprob (the request asked for
them) are reported in OpenAI's shapes, per chunk when streaming.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from edgeweave.generation.logprobs import TokenLogprob
from edgeweave.serving.http_errors import ApiError
from edgeweave.wire import sse
from edgeweave.wire.openai_api import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatLogprobs,
    ChunkChoice,
    ChunkDelta,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    Usage,
    new_id,
)
from edgeweave.wire.protocol import ErrorBody
from edgeweave.wire.uncertainty import UncertaintyScore

log = logging.getLogger("edgeweave.openai")


@dataclass(frozen=True)
class Delta:
    text: str
    token_id: int | None = None
    logprob: TokenLogprob | None = None  # when the request asked for logprobs (edgeweave.generation.logprobs)


class AnswerFailed(Exception):
    """The producer broke off after the answer had started."""


@dataclass
class Answer:
    """A generation being produced somewhere, seen as text deltas."""

    endpoint: str  # who produces it ("device:<id>", "cloud:<name>", the engine's name)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    cost_usd: float | None = None  # what producing it cost, where known (the coordinator's DiSCo)
    uncertainty: UncertaintyScore | None = None  # the request asked for a score: set before deltas() ends

    def deltas(self) -> AsyncIterator[Delta]:
        raise NotImplementedError


OnToken = Callable[[bool], None]  # called per delta; True for the first


async def respond(
    request: web.Request,
    answer: Answer,
    model: str,
    chat: bool,
    stream: bool,
    include_usage: bool,
    on_token: OnToken,
    headers: dict[str, str] | None = None,
    token_ids: bool = False,
) -> web.StreamResponse:
    """The aiohttp response for ``answer``: a JSON body, or SSE chunks as they come (chat chunks
    with each token's id if ``token_ids``)."""
    if not stream:
        return web.json_response(await collect(answer, model, chat, on_token), headers=headers)
    resp = await sse.open_stream(request, headers or {})
    try:
        async for chunk in sse_chunks(answer, model, chat, include_usage, on_token, token_ids):
            await resp.write(chunk)
    except ConnectionResetError:
        log.info("client left a stream on %s: cancelling it there", answer.endpoint)
        return resp
    await resp.write_eof()
    return resp


async def collect(answer: Answer, model: str, chat: bool, on_token: OnToken) -> dict[str, object]:
    """The whole answer as a ``chat.completion`` / ``text_completion`` body."""
    parts: list[str] = []
    logprobs: list[TokenLogprob] = []
    offsets: list[int] = []  # where each logprob's token begins in the text
    length = 0
    try:
        async for delta in answer.deltas():
            on_token(not parts)
            parts.append(delta.text)
            if delta.logprob is not None:
                logprobs.append(delta.logprob)
                offsets.append(length)
            length += len(delta.text)
    except AnswerFailed as e:
        raise ApiError(502, str(e), code="endpoint_failed") from None
    text, finish = "".join(parts), answer.finish_reason
    usage = Usage.of(answer.prompt_tokens, answer.completion_tokens, answer.cost_usd)
    body: BaseModel
    if chat:
        chat_logprobs = ChatLogprobs.of(logprobs) if logprobs else None
        choice = ChatChoice(message=AssistantMessage(content=text), finish_reason=finish, logprobs=chat_logprobs)
        body = ChatCompletion(
            id=new_id("chatcmpl"), model=model, choices=[choice], usage=usage, system_fingerprint=answer.endpoint
        )
    else:
        body = Completion(
            id=new_id("cmpl"),
            model=model,
            choices=[
                CompletionChoice(
                    text=text,
                    finish_reason=finish,
                    logprobs=CompletionLogprobs.of(logprobs, offsets) if logprobs else None,
                )
            ],
            usage=usage,
            system_fingerprint=answer.endpoint,
        )
    return body.model_dump()


async def sse_chunks(
    answer: Answer, model: str, chat: bool, include_usage: bool, on_token: OnToken, token_ids: bool = False
) -> AsyncIterator[bytes]:
    """The answer as encoded SSE events: role, content deltas, finish, usage, ``[DONE]``
    (or an ``error`` event if the producer breaks off)."""
    cid = new_id("chatcmpl" if chat else "cmpl")

    def chunk(
        text: str | None,
        finish: str | None = None,
        role: bool = False,
        ids: list[int] | None = None,
        logprob: TokenLogprob | None = None,
        offset: int = 0,
    ) -> bytes:
        body: BaseModel
        if chat:
            delta = ChunkDelta(role="assistant" if role else None, content=text, token_ids=ids)
            lp = None if logprob is None else ChatLogprobs.of([logprob], with_ids=token_ids)
            body = ChatCompletionChunk(
                id=cid,
                model=model,
                choices=[ChunkChoice(delta=delta, finish_reason=finish, logprobs=lp)],
                system_fingerprint=answer.endpoint,
            )
        else:
            clp = None if logprob is None else CompletionLogprobs.of([logprob], [offset])
            body = Completion(
                id=cid,
                model=model,
                choices=[CompletionChoice(text=text or "", finish_reason=finish, logprobs=clp)],
                system_fingerprint=answer.endpoint,
            )
        return sse.encode(body.model_dump_json(exclude_none=chat))

    try:
        if chat:
            yield chunk("", role=True)
        first = True
        length = 0  # of the text streamed so far (completions' text_offset)
        async for delta in answer.deltas():
            on_token(first)
            first = False
            ids = [delta.token_id] if token_ids and chat and delta.token_id is not None else None
            # even an empty text (a partial UTF-8 character) carries a token's id or logprob
            if delta.text or ids is not None or delta.logprob is not None:
                yield chunk(delta.text, ids=ids, logprob=delta.logprob, offset=length)
            length += len(delta.text)
        yield chunk(None, finish=answer.finish_reason)
        if include_usage:
            usage = Usage.of(answer.prompt_tokens, answer.completion_tokens, answer.cost_usd)
            tail: BaseModel = (
                ChatCompletionChunk(id=cid, model=model, choices=[], usage=usage)
                if chat
                else Completion(id=cid, model=model, choices=[], usage=usage)
            )
            yield sse.encode(tail.model_dump_json())
        yield sse.encode("[DONE]")
    except AnswerFailed as e:
        log.warning("stream on %s broke: %s", answer.endpoint, e)
        error = ErrorBody(message=str(e), type="server_error", code="endpoint_failed")
        yield sse.encode(f'{{"error": {error.model_dump_json()}}}')
