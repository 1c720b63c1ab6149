"""A generation opened on one endpoint (a *route*), seen as a stream of text deltas.

The live answer (:mod:`coordinator.streaming.answer`) reads a route without
knowing whether a device daemon (edgeweave's event stream, token ids and
logprobs included) or an OpenAI-compatible cloud endpoint produced it.  A
route owns what was opened for it (the HTTP stream, the in-flight counts, on
an exit stack that :meth:`Route.close` unwinds), counts the tokens it produced
(held-back ones included: they cost as much) and times its first token from the
moment it was asked for, which is what DiSCo's TTFT profiles are fitted on.
"""

from __future__ import annotations

import abc
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aiohttp
from pydantic import ValidationError

from coordinator.cluster.device_client import DeviceError, Unreachable, refusal
from coordinator.cluster.placement import Tier
from edgeweave.config import CloudEndpoint
from edgeweave.generation.logprobs import TokenLogprob
from edgeweave.generation.sampling import SamplingParams
from edgeweave.serving.openai_serving import AnswerFailed, Delta
from edgeweave.wire import sse
from edgeweave.wire.protocol import DoneEvent, ErrorEvent, Message, StartEvent, StreamEvent, TokenMessage
from edgeweave.wire.uncertainty import UncertaintyRequest, UncertaintyScore


class EndpointFailed(AnswerFailed):
    """An endpoint broke off, refused in-stream, or sent something malformed."""


@dataclass(frozen=True)
class Job:
    """What the client asked for, in the coordinator's terms."""

    model: str
    sampling: SamplingParams
    messages: list[Message] | None = None
    prompt: str | list[int] | None = None
    fill_context: bool = False  # the client gave no max_tokens: stop at the context's end
    pin: str | None = None  # serve only on this endpoint ("device:<id>" / "cloud:<name>")
    resume_tokens: tuple[int, ...] = ()  # generated elsewhere already: continue after them
    tiers: tuple[Tier, ...] = ()  # serve on these tiers only, in this order (empty: any, the policy's order)
    uncertainty: UncertaintyRequest | None = None  # the endpoint scores its answer (edgeweave.wire.uncertainty)


class Route(abc.ABC):
    def __init__(self, endpoint: str, job: Job, stack: AsyncExitStack, asked_at: float) -> None:
        self.endpoint = endpoint
        self.job = job
        self.asked_at = asked_at
        self.prompt_tokens = 0  # what the endpoint says it prefilled (resumed tokens included); 0 until it has
        self.finish_reason: str | None = None
        self.generated = 0
        self.ttft_s: float | None = None
        self.cached_tokens = 0  # of its prompt + resumed tokens, those it reused from its prompt cache (if it says)
        self.uncertainty: UncertaintyScore | None = None  # the endpoint's score of its answer, when the job asked
        self._stack = stack
        self._it: AsyncIterator[Delta] | None = None
        self._head: list[Delta | None] = []

    @abc.abstractmethod
    def deltas(self) -> AsyncIterator[Delta]:
        """The endpoint's deltas, once; raises :class:`EndpointFailed` if it breaks off."""

    async def next(self) -> Delta | None:
        """The next delta, or None once the endpoint has finished."""
        if self._head:
            return self._head.pop()
        if self._it is None:
            self._it = self.deltas()
        item = await anext(self._it, None)
        if item is not None:
            self.generated += 1
            if self.ttft_s is None:
                self.ttft_s = time.monotonic() - self.asked_at
        return item

    async def peek(self) -> None:
        """Wait for the first delta (or the end) and keep it for :meth:`next`."""
        if not self._head:
            self._head.append(await self.next())

    async def close(self) -> None:
        """Stop the endpoint generating and release what was opened for it."""
        if self._it is not None:
            with contextlib.suppress(Exception):
                await self._it.aclose()  # type: ignore[attr-defined]
        await self._stack.aclose()


class DeviceRoute(Route):
    def __init__(
        self, endpoint: str, job: Job, stack: AsyncExitStack, asked_at: float, events: AsyncIterator[StreamEvent]
    ) -> None:
        super().__init__(endpoint, job, stack, asked_at)
        self._events = events

    async def start(self) -> None:
        first = await anext(self._events, None)
        if isinstance(first, ErrorEvent):
            raise EndpointFailed(first.error.message)
        if not isinstance(first, StartEvent):
            raise EndpointFailed(f"{self.endpoint} sent no start event")
        self.prompt_tokens = first.prompt_tokens

    async def deltas(self) -> AsyncIterator[Delta]:
        try:
            async for ev in self._events:
                if isinstance(ev, TokenMessage):
                    yield Delta(ev.text, ev.id, ev.logprob)
                elif isinstance(ev, DoneEvent):
                    self.finish_reason = ev.finish_reason
                    self.cached_tokens = ev.cached_tokens
                    self.uncertainty = ev.uncertainty
                    return
                elif isinstance(ev, ErrorEvent):
                    raise EndpointFailed(f"{self.endpoint}: {ev.error.message}")
        except DeviceError as e:
            raise EndpointFailed(f"{self.endpoint} failed mid-answer ({e})") from None
        raise EndpointFailed(f"{self.endpoint} closed the stream before finishing")


class CloudRoute(Route):
    """An OpenAI-compatible upstream, streamed (``stream_options.include_usage``)."""

    def __init__(
        self, endpoint: str, job: Job, stack: AsyncExitStack, asked_at: float, resp: aiohttp.ClientResponse
    ) -> None:
        super().__init__(endpoint, job, stack, asked_at)
        self._resp = resp

    async def deltas(self) -> AsyncIterator[Delta]:
        try:
            async for ev in sse.read_events(self._resp):
                if ev.data.strip() == "[DONE]":
                    return
                chunk = json.loads(ev.data)
                if "error" in chunk:
                    raise EndpointFailed(f"{self.endpoint}: {chunk['error'].get('message', chunk['error'])}")
                if chunk.get("usage"):
                    self.prompt_tokens = chunk["usage"]["prompt_tokens"]
                if chunk.get("uncertainty"):
                    try:
                        self.uncertainty = UncertaintyScore.model_validate(chunk["uncertainty"])
                    except ValidationError:
                        raise EndpointFailed(f"{self.endpoint} sent a malformed uncertainty score") from None
                for choice in chunk.get("choices", []):
                    text = choice.get("delta", {}).get("content") if "delta" in choice else choice.get("text")
                    ids = choice.get("delta", {}).get("token_ids") or []
                    logprobs = self._logprobs(choice)
                    if choice.get("finish_reason"):
                        self.finish_reason = choice["finish_reason"]
                    if len(ids) == 1:  # an edgeweave server: one token per chunk, with its id
                        yield Delta(text or "", ids[0], logprobs[0] if len(logprobs) == 1 else None)
                    elif text:
                        yield Delta(text, None, logprobs[0] if len(logprobs) == 1 else None)
        except (aiohttp.ClientError, TimeoutError, OSError, json.JSONDecodeError) as e:
            raise EndpointFailed(f"{self.endpoint} failed mid-answer ({type(e).__name__})") from None
        raise EndpointFailed(f"{self.endpoint} closed the stream without [DONE]")

    def _logprobs(self, choice: dict[str, object]) -> list[TokenLogprob]:
        """A chunk's ``logprobs.content`` entries (OpenAI's chat shape, with edgeweave's token ids).  A
        server that does not speak edgeweave's extensions sends no ids: its logprobs cannot be carried
        across a migration as tokens, so they are not relayed."""
        block = choice.get("logprobs")
        content = block.get("content") if isinstance(block, dict) else None
        if not content or not all(isinstance(e, dict) and "id" in e for e in content):
            return []
        try:
            return [TokenLogprob.model_validate(e) for e in content or ()]
        except ValidationError as e:
            raise EndpointFailed(f"{self.endpoint} sent malformed logprobs ({e.error_count()} problems)") from None


def cloud_payload(job: Job, extensions: bool) -> tuple[str, dict[str, object]]:
    """The upstream path and body for ``job`` (with edgeweave's request extensions if the
    endpoint is an edgeweave cloud server)."""
    s = job.sampling
    body: dict[str, object] = {
        "model": job.model,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if not job.fill_context:
        body["max_tokens"] = s.max_tokens
    if s.seed is not None:
        body["seed"] = s.seed
    if s.stop:
        body["stop"] = s.stop
    if s.logprobs is not None:
        body |= {"logprobs": True, "top_logprobs": s.logprobs} if job.messages is not None else {"logprobs": s.logprobs}
    if extensions:
        body |= {"ignore_eos": s.ignore_eos, "resume_tokens": list(job.resume_tokens)}
    elif job.resume_tokens:
        raise EndpointFailed("resume_tokens need an edgeweave cloud server (extensions = true)")
    if job.messages is not None and extensions:
        body["return_token_ids"] = True
    if s.output is not None:
        if not extensions:
            raise EndpointFailed("tools and response_format need an edgeweave cloud server (extensions = true)")
        body["output"] = s.output.model_dump(exclude_none=True, by_alias=True)
    if job.uncertainty is not None:
        if not extensions:
            raise EndpointFailed("uncertainty needs an edgeweave cloud server (extensions = true)")
        body["uncertainty"] = job.uncertainty.model_dump(exclude_none=True)
    if job.messages is not None:
        body["messages"] = [m.model_dump() for m in job.messages]
        return "/chat/completions", body
    body["prompt"] = job.prompt
    return "/completions", body


async def open_cloud(session: aiohttp.ClientSession, endpoint: CloudEndpoint, job: Job) -> aiohttp.ClientResponse:
    path, body = cloud_payload(job, endpoint.extensions)
    headers = {"Authorization": f"Bearer {endpoint.api_key.get_secret_value()}"} if endpoint.api_key else {}
    try:
        resp = await session.post(
            str(endpoint.url).rstrip("/") + path,
            json=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise Unreachable(f"cloud {endpoint.name}: {type(e).__name__} {e}") from None
    if resp.status != 200:
        raw = await resp.read()
        resp.release()
        raise refusal(resp.status, raw, resp.headers.get("Retry-After"))
    return resp
