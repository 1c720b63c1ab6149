"""OpenAI-shaped responses from streams of text deltas, for every front door.

The coordinator (relaying a device or cloud endpoint) and the cloud server
(streaming from its engine) both hand an :class:`Answer`, or one per choice when
the request asked for ``n`` of them, to :func:`respond`, which writes a
``chat.completion`` / ``text_completion`` body or its SSE chunks (a role chunk
per choice first, then the choices' content interleaved as it comes, each chunk
with its choice's ``index``, a finish chunk per choice, the optional usage chunk
and ``[DONE]``).  Deltas that carry a logprob (the request asked for them) are
reported in OpenAI's shapes, per chunk when streaming.  Usage counts the prompt
once and the completion tokens of every choice (as OpenAI's); the ``uncertainty``
score is choice 0's (in the body, or in the last chunk with a finish reason),
its extra generations in ``usage``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from edgeweave.generation.logprobs import TokenLogprob
from edgeweave.generation.tools import FunctionCallDelta, ToolCallDelta
from edgeweave.serving.http_errors import ApiError
from edgeweave.serving.tool_stream import ToolCallStream, split_answer
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


OnToken = Callable[[bool], None]  # called per delta; True for the first (of any choice)
Answers = Answer | Sequence[Answer]  # one per choice (``n``); choice i is the i-th


def _choices(answer: Answers) -> list[Answer]:
    return [answer] if isinstance(answer, Answer) else list(answer)


async def respond(
    request: web.Request,
    answer: Answers,
    model: str,
    chat: bool,
    stream: bool,
    include_usage: bool,
    on_token: OnToken,
    headers: dict[str, str] | None = None,
    token_ids: bool = False,
    tools: bool = False,
) -> web.StreamResponse:
    """The aiohttp response for ``answer`` (or one answer per choice): a JSON body, or SSE chunks
    as they come (chat chunks with each token's id if ``token_ids``); with ``tools``, calls come back
    as ``tool_calls`` (:mod:`edgeweave.serving.tool_stream`)."""
    if not stream:
        return web.json_response(await collect(answer, model, chat, on_token, tools), headers=headers)
    resp = await sse.open_stream(request, headers or {})
    try:
        async for chunk in sse_chunks(answer, model, chat, include_usage, on_token, token_ids, tools):
            await resp.write(chunk)
    except ConnectionResetError:
        log.info("client left a stream on %s: cancelling it there", _choices(answer)[0].endpoint)
        return resp
    await resp.write_eof()
    return resp


async def _interleaved(answers: Sequence[Answer]) -> AsyncIterator[tuple[int, Delta | None]]:
    """``(choice, delta)`` as each choice produces them, and ``(choice, None)`` when it has ended;
    a choice that fails raises here (and the others are cancelled)."""
    if len(answers) == 1:  # one choice: read it in the caller's task, as before choices existed
        async for delta in answers[0].deltas():
            yield 0, delta
        yield 0, None
        return
    queue: asyncio.Queue[tuple[int, Delta | Exception | None]] = asyncio.Queue()

    async def pump(i: int, answer: Answer) -> None:
        try:
            async with contextlib.aclosing(answer.deltas()) as deltas:
                async for delta in deltas:
                    queue.put_nowait((i, delta))
        except Exception as e:  # handed to the reader, which raises it
            queue.put_nowait((i, e))
            return
        queue.put_nowait((i, None))

    tasks = [asyncio.create_task(pump(i, a)) for i, a in enumerate(answers)]
    try:
        running = len(answers)
        while running:
            i, item = await queue.get()
            if isinstance(item, Exception):
                raise item
            running -= item is None
            yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _usage(answers: Sequence[Answer]) -> Usage:
    """The prompt once (every choice answers the same one), the completions of all choices, choice 0's score."""
    costs = [a.cost_usd for a in answers if a.cost_usd is not None]
    return Usage.of(
        answers[0].prompt_tokens,
        sum(a.completion_tokens for a in answers),
        sum(costs) if costs else None,
        uncertainty=answers[0].uncertainty,
    )


@dataclass
class _Text:
    """One choice's text so far, with its tokens' logprobs and where each token begins."""

    parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    length: int = 0

    def add(self, delta: Delta) -> None:
        self.parts.append(delta.text)
        if delta.logprob is not None:
            self.logprobs.append(delta.logprob)
            self.offsets.append(self.length)
        self.length += len(delta.text)


def _message(text: str, tools: bool, finish: str | None) -> tuple[AssistantMessage, str | None]:
    if not tools:
        return AssistantMessage(content=text), finish
    content, calls = split_answer(text)
    return AssistantMessage(content=content, tool_calls=calls or None), "tool_calls" if calls else finish


async def collect(answer: Answers, model: str, chat: bool, on_token: OnToken, tools: bool = False) -> dict[str, object]:
    """The whole answer (one choice per answer) as a ``chat.completion`` / ``text_completion`` body."""
    answers = _choices(answer)
    texts = [_Text() for _ in answers]
    first = True
    try:
        async with contextlib.aclosing(_interleaved(answers)) as deltas:
            async for i, delta in deltas:
                if delta is not None:
                    on_token(first)
                    first = False
                    texts[i].add(delta)
    except AnswerFailed as e:
        raise ApiError(502, str(e), code="endpoint_failed") from None
    usage, endpoint, score = _usage(answers), answers[0].endpoint, answers[0].uncertainty
    body: BaseModel
    if chat:
        choices = []
        for i, (a, t) in enumerate(zip(answers, texts, strict=True)):
            message, finish = _message("".join(t.parts), tools, a.finish_reason)
            lp = ChatLogprobs.of(t.logprobs) if t.logprobs else None
            choices.append(ChatChoice(index=i, message=message, finish_reason=finish, logprobs=lp))
        body = ChatCompletion(
            id=new_id("chatcmpl"),
            model=model,
            choices=choices,
            usage=usage,
            system_fingerprint=endpoint,
            uncertainty=score,
        )
    else:
        completions = [
            CompletionChoice(
                index=i,
                text="".join(t.parts),
                finish_reason=a.finish_reason,
                logprobs=CompletionLogprobs.of(t.logprobs, t.offsets) if t.logprobs else None,
            )
            for i, (a, t) in enumerate(zip(answers, texts, strict=True))
        ]
        body = Completion(
            id=new_id("cmpl"),
            model=model,
            choices=completions,
            usage=usage,
            system_fingerprint=endpoint,
            uncertainty=score,
        )
    return body.model_dump()


async def sse_chunks(
    answer: Answers,
    model: str,
    chat: bool,
    include_usage: bool,
    on_token: OnToken,
    token_ids: bool = False,
    tools: bool = False,
) -> AsyncIterator[bytes]:
    """The answer (one choice per answer) as encoded SSE events: a role chunk per choice, the choices'
    content deltas (or, with ``tools``, ``tool_calls`` deltas) as they come, a finish chunk per choice
    (the last one with choice 0's ``uncertainty``), usage, ``[DONE]`` (or an ``error`` event if a
    producer breaks off)."""
    answers = _choices(answer)
    cid = new_id("chatcmpl" if chat else "cmpl")
    splitters = [ToolCallStream() for _ in answers] if tools and chat else None

    def chunk(
        index: int,
        text: str | None,
        finish: str | None = None,
        role: bool = False,
        ids: list[int] | None = None,
        logprob: TokenLogprob | None = None,
        offset: int = 0,
        score: UncertaintyScore | None = None,
        calls: list[ToolCallDelta] | None = None,
    ) -> bytes:
        body: BaseModel
        endpoint = answers[index].endpoint  # read per chunk: an answer that moved is served from elsewhere
        if chat:
            delta = ChunkDelta(role="assistant" if role else None, content=text, token_ids=ids, tool_calls=calls)
            lp = None if logprob is None else ChatLogprobs.of([logprob], with_ids=token_ids)
            body = ChatCompletionChunk(
                id=cid,
                model=model,
                choices=[ChunkChoice(index=index, delta=delta, finish_reason=finish, logprobs=lp)],
                system_fingerprint=endpoint,
                uncertainty=score,
            )
        else:
            clp = None if logprob is None else CompletionLogprobs.of([logprob], [offset])
            body = Completion(
                id=cid,
                model=model,
                choices=[CompletionChoice(index=index, text=text or "", finish_reason=finish, logprobs=clp)],
                system_fingerprint=endpoint,
                uncertainty=score,
            )
        return sse.encode(body.model_dump_json(exclude_none=chat))

    try:
        if chat:
            for i in range(len(answers)):
                yield chunk(i, "", role=True)
        first = True
        lengths = [0] * len(answers)  # of each choice's text streamed so far (completions' text_offset)
        running = len(answers)
        async with contextlib.aclosing(_interleaved(answers)) as deltas:
            async for i, delta in deltas:
                if delta is None:
                    running -= 1
                    finish = answers[i].finish_reason
                    if splitters is not None:
                        if rest := splitters[i].flush():
                            yield chunk(i, rest)
                        finish = "tool_calls" if splitters[i].calls else finish
                    # the last choice to finish carries the score: choice 0 has ended by then, so it is set
                    yield chunk(i, None, finish=finish, score=None if running else answers[0].uncertainty)
                    continue
                on_token(first)
                first = False
                ids = [delta.token_id] if token_ids and chat and delta.token_id is not None else None
                text, made = (delta.text, []) if splitters is None else splitters[i].push(delta.text)
                # even an empty text (a partial UTF-8 character) carries a token's id or logprob
                if text or ids is not None or delta.logprob is not None:
                    yield chunk(i, text, ids=ids, logprob=delta.logprob, offset=lengths[i])
                first_index = splitters[i].calls - len(made) if splitters is not None else 0
                for k, call in enumerate(made):
                    fn = FunctionCallDelta(name=call.function.name, arguments=call.function.arguments)
                    delta_k = ToolCallDelta(index=first_index + k, id=call.id, type="function", function=fn)
                    yield chunk(i, None, calls=[delta_k])
                lengths[i] += len(delta.text)
        if include_usage:
            usage = _usage(answers)
            tail: BaseModel = (
                ChatCompletionChunk(id=cid, model=model, choices=[], usage=usage)
                if chat
                else Completion(id=cid, model=model, choices=[], usage=usage)
            )
            yield sse.encode(tail.model_dump_json())
        yield sse.encode("[DONE]")
    except AnswerFailed as e:
        log.warning("stream on %s broke: %s", answers[0].endpoint, e)
        error = ErrorBody(message=str(e), type="server_error", code="endpoint_failed")
        yield sse.encode(f'{{"error": {error.model_dump_json()}}}')
