"""A generation opened on one endpoint, seen as a stream of text deltas.

The coordinator's front door formats OpenAI responses from :class:`Delta`s
without knowing whether a device daemon (edgeweave's event stream, token ids
included) or an OpenAI-compatible cloud endpoint produced them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from coordinator.cluster.device_client import DeviceError, Unreachable, refusal
from coordinator.cluster.placement import Tier
from edgeweave.config import CloudEndpoint
from edgeweave.generation.sampling import SamplingParams
from edgeweave.serving.openai_serving import Answer as Route
from edgeweave.serving.openai_serving import AnswerFailed as EndpointFailed
from edgeweave.serving.openai_serving import Delta
from edgeweave.wire import sse
from edgeweave.wire.protocol import DoneEvent, ErrorEvent, Message, StartEvent, StreamEvent, TokenMessage


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


class DeviceRoute(Route):
    def __init__(self, endpoint: str, events: AsyncIterator[StreamEvent]) -> None:
        super().__init__(endpoint)
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
                    self.completion_tokens += 1
                    yield Delta(ev.text, ev.id)
                elif isinstance(ev, DoneEvent):
                    self.finish_reason = ev.finish_reason
                    self.completion_tokens = ev.completion_tokens
                    return
                elif isinstance(ev, ErrorEvent):
                    raise EndpointFailed(f"{self.endpoint}: {ev.error.message}")
        except DeviceError as e:
            raise EndpointFailed(f"{self.endpoint} failed mid-answer ({e})") from None
        raise EndpointFailed(f"{self.endpoint} closed the stream before finishing")


class CloudRoute(Route):
    """An OpenAI-compatible upstream, streamed (``stream_options.include_usage``)."""

    def __init__(self, endpoint: str, resp: aiohttp.ClientResponse) -> None:
        super().__init__(endpoint)
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
                    self.completion_tokens = chunk["usage"]["completion_tokens"]
                for choice in chunk.get("choices", []):
                    text = choice.get("delta", {}).get("content") if "delta" in choice else choice.get("text")
                    ids = choice.get("delta", {}).get("token_ids") or []
                    if choice.get("finish_reason"):
                        self.finish_reason = choice["finish_reason"]
                    if len(ids) == 1:  # an edgeweave server: one token per chunk, with its id
                        yield Delta(text or "", ids[0])
                    elif text:
                        yield Delta(text)
        except (aiohttp.ClientError, TimeoutError, OSError, json.JSONDecodeError) as e:
            raise EndpointFailed(f"{self.endpoint} failed mid-answer ({type(e).__name__})") from None
        raise EndpointFailed(f"{self.endpoint} closed the stream without [DONE]")


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
    if extensions:
        body |= {"ignore_eos": s.ignore_eos, "resume_tokens": list(job.resume_tokens)}
    elif job.resume_tokens:
        raise EndpointFailed("resume_tokens need an edgeweave cloud server (extensions = true)")
    if job.messages is not None and extensions:
        body["return_token_ids"] = True
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
