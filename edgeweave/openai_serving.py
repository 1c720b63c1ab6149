"""OpenAI-shaped responses from a stream of text deltas, for every front door.

The coordinator (relaying a device or cloud endpoint) and the cloud server
(streaming from its engine) both hand an :class:`Answer` to :func:`respond`,
which writes a ``chat.completion`` / ``text_completion`` body or its SSE
chunks (role first, then content, then the finish reason, the optional usage
chunk and ``[DONE]``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from edgeweave import sse
from edgeweave.http_errors import ApiError
from edgeweave.openai_api import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    Completion,
    CompletionChoice,
    Usage,
    new_id,
)
from edgeweave.protocol import ErrorBody

log = logging.getLogger("edgeweave.openai")


@dataclass(frozen=True)
class Delta:
    text: str
    token_id: int | None = None


class AnswerFailed(Exception):
    """The producer broke off after the answer had started."""


@dataclass
class Answer:
    """A generation being produced somewhere, seen as text deltas."""

    endpoint: str  # who produces it ("device:<id>", "cloud:<name>", the engine's name)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None

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
) -> web.StreamResponse:
    if stream:
        return await _stream(request, answer, model, chat, include_usage, on_token, headers or {})
    return await _collect(answer, model, chat, on_token, headers or {})


async def _collect(answer: Answer, model: str, chat: bool, on_token: OnToken, headers: dict[str, str]) -> web.Response:
    parts: list[str] = []
    try:
        async for delta in answer.deltas():
            on_token(not parts)
            parts.append(delta.text)
    except AnswerFailed as e:
        raise ApiError(502, str(e), code="endpoint_failed") from None
    text, usage, finish = "".join(parts), Usage.of(answer.prompt_tokens, answer.completion_tokens), answer.finish_reason
    body: BaseModel
    if chat:
        choice = ChatChoice(message=AssistantMessage(content=text), finish_reason=finish)
        body = ChatCompletion(
            id=new_id("chatcmpl"), model=model, choices=[choice], usage=usage, system_fingerprint=answer.endpoint
        )
    else:
        body = Completion(
            id=new_id("cmpl"),
            model=model,
            choices=[CompletionChoice(text=text, finish_reason=finish)],
            usage=usage,
            system_fingerprint=answer.endpoint,
        )
    return web.json_response(body.model_dump(), headers=headers)


async def _stream(
    request: web.Request,
    answer: Answer,
    model: str,
    chat: bool,
    include_usage: bool,
    on_token: OnToken,
    headers: dict[str, str],
) -> web.StreamResponse:
    cid = new_id("chatcmpl" if chat else "cmpl")
    resp = await sse.open_stream(request, headers)

    async def send(text: str | None, finish: str | None = None, role: bool = False) -> None:
        chunk: BaseModel
        if chat:
            delta = ChunkDelta(role="assistant" if role else None, content=text)
            chunk = ChatCompletionChunk(
                id=cid,
                model=model,
                choices=[ChunkChoice(delta=delta, finish_reason=finish)],
                system_fingerprint=answer.endpoint,
            )
        else:
            chunk = Completion(
                id=cid,
                model=model,
                choices=[CompletionChoice(text=text or "", finish_reason=finish)],
                system_fingerprint=answer.endpoint,
            )
        await resp.write(sse.encode(chunk.model_dump_json(exclude_none=chat)))

    try:
        if chat:
            await send("", role=True)
        first = True
        async for delta in answer.deltas():
            on_token(first)
            first = False
            if delta.text:
                await send(delta.text)
        await send(None, finish=answer.finish_reason)
        if include_usage:
            usage = Usage.of(answer.prompt_tokens, answer.completion_tokens)
            tail: BaseModel = (
                ChatCompletionChunk(id=cid, model=model, choices=[], usage=usage)
                if chat
                else Completion(id=cid, model=model, choices=[], usage=usage)
            )
            await resp.write(sse.encode(tail.model_dump_json()))
        await resp.write(sse.encode("[DONE]"))
    except AnswerFailed as e:
        log.warning("stream on %s broke: %s", answer.endpoint, e)
        error = ErrorBody(message=str(e), type="server_error", code="endpoint_failed")
        await resp.write(sse.encode(f'{{"error": {error.model_dump_json()}}}'))
    except ConnectionResetError:
        log.info("client left a stream on %s: cancelling it there", answer.endpoint)
        return resp
    await resp.write_eof()
    return resp
