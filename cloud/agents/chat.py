"""An agent's model: any OpenAI-compatible chat endpoint, called with tools and read back as a typed turn.

:class:`OpenAIChatModel` speaks the official ``openai`` client to the coordinator (which places the
call on a device or the cloud and reports where: ``system_fingerprint``), to the cloud service, or to
any OpenAI-compatible server.  Each call is greedy with token log-probabilities (an agent's
confidence, :attr:`Turn.confidence`, is their mean: the paper's per-agent signal for tracing and the
cascade).  Identical calls within one :class:`TurnCache` are answered once: a multi-agent rerun that
upgrades one agent reuses the turns before it, which are the same requests.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Literal, Protocol

import openai
from pydantic import BaseModel, ConfigDict, Field

from edgeweave.errors import EdgeweaveError
from edgeweave.generation.tools import FunctionCall, ResponseFormat, ToolCall
from edgeweave.home.tools import tool_definitions
from edgeweave.wire.openai_api import ChatMessageIn

Tier = Literal["device", "cloud"]


class ModelChoice(BaseModel):
    """Which model an agent calls and on which tier the coordinator should place it."""

    model_config = ConfigDict(frozen=True)
    model: str
    tier: Tier


class Turn(BaseModel):
    """One model call of one agent: what it answered, where, how confident, and what it took."""

    agent: str
    model: str
    tier: Tier
    endpoint: str  # who answered ("device:pi-1", "cloud:gpu"; the coordinator's system_fingerprint)
    message: ChatMessageIn
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[float] = Field(default_factory=list)
    seconds: float = 0.0
    cost_usd: float | None = None  # when the endpoint reports it (the coordinator's DiSCo cost)
    cached: bool = False  # answered from the TurnCache (costs nothing again)

    @property
    def confidence(self) -> float:
        """Mean token probability of the answer (1.0 when the endpoint sent no log-probabilities)."""
        return math.exp(sum(self.logprobs) / len(self.logprobs)) if self.logprobs else 1.0


class AgentModelError(EdgeweaveError):
    """The model endpoint failed or refused (its status and message)."""


class ChatModel(Protocol):
    async def complete(
        self,
        agent: str,
        choice: ModelChoice,
        messages: list[ChatMessageIn],
        max_tokens: int,
        tools: bool = False,
        response_format: ResponseFormat | None = None,
    ) -> Turn: ...


class TurnCache:
    """Turns by their exact request; one per task's runs."""

    def __init__(self) -> None:
        self._turns: dict[str, Turn] = {}

    @staticmethod
    def key(choice: ModelChoice, messages: list[ChatMessageIn], tools: bool, fmt: ResponseFormat | None) -> str:
        body = [m.model_dump(exclude={"tool_calls": {"__all__": {"id"}}}, exclude_none=True) for m in messages]
        return json.dumps([choice.model_dump(), body, tools, fmt.model_dump() if fmt else None], sort_keys=True)

    def get(self, key: str) -> Turn | None:
        return self._turns.get(key)

    def put(self, key: str, turn: Turn) -> None:
        self._turns[key] = turn


class OpenAIChatModel:
    """Calls through the official client; ``coordinator=True`` adds edgeweave's placement hint."""

    def __init__(self, client: openai.AsyncOpenAI, coordinator: bool = True, cache: TurnCache | None = None) -> None:
        self.client = client
        self.coordinator = coordinator
        self.cache = cache
        self._tools = [t.model_dump(exclude_none=True) for t in tool_definitions()]

    def with_cache(self, cache: TurnCache | None) -> OpenAIChatModel:
        return OpenAIChatModel(self.client, self.coordinator, cache)

    async def complete(
        self,
        agent: str,
        choice: ModelChoice,
        messages: list[ChatMessageIn],
        max_tokens: int,
        tools: bool = False,
        response_format: ResponseFormat | None = None,
    ) -> Turn:
        key = TurnCache.key(choice, messages, tools, response_format) if self.cache is not None else ""
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit.model_copy(update={"agent": agent, "cached": True})
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs |= {"tools": self._tools, "tool_choice": "auto"}
        if response_format is not None:
            kwargs["response_format"] = response_format.model_dump(exclude_none=True, by_alias=True)
        extra = {"prefer": choice.tier} if self.coordinator else {}
        start = time.perf_counter()
        try:
            resp = await self.client.chat.completions.create(
                model=choice.model,
                messages=[m.model_dump(exclude_none=True) for m in messages],  # type: ignore[misc]
                max_tokens=max_tokens,
                temperature=0.0,
                logprobs=True,
                extra_body=extra or None,
                **kwargs,
            )
        except openai.APIError as e:
            raise AgentModelError(f"{agent} on {choice.model} ({choice.tier}): {e}") from None
        seconds = time.perf_counter() - start
        msg = resp.choices[0].message
        calls = [
            ToolCall(id=c.id, function=FunctionCall(name=c.function.name, arguments=c.function.arguments))
            for c in msg.tool_calls or []
            if c.type == "function"
        ]
        lps = resp.choices[0].logprobs
        usage = resp.usage
        extra_usage = usage.model_extra or {} if usage else {}
        turn = Turn(
            agent=agent,
            model=choice.model,
            tier=choice.tier,
            endpoint=resp.system_fingerprint or choice.tier,
            message=ChatMessageIn(role="assistant", content=msg.content, tool_calls=calls or None)
            if calls or msg.content
            else ChatMessageIn(role="assistant", content=""),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            logprobs=[t.logprob for t in (lps.content or [])] if lps else [],
            seconds=seconds,
            cost_usd=extra_usage.get("cost_usd"),
        )
        if self.cache is not None:
            self.cache.put(key, turn)
        return turn
