"""The OpenAI-compatible API surface: request bodies and response objects.

Served by the coordinator (and the cloud engine), and spoken to upstream
OpenAI-compatible endpoints.  Requests reject fields we do not implement
(naming them) instead of silently ignoring them; ``ignore_eos`` is accepted
as an extension, as vLLM does.  Log-probabilities are asked for in OpenAI's two
ways (chat: ``logprobs: true`` + ``top_logprobs: 0..20``; completions:
``logprobs: 0..5``), both becoming ``SamplingParams.logprobs``, and reported in
OpenAI's two shapes (:class:`ChatLogprobs`, :class:`CompletionLogprobs`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from edgeweave.generation.logprobs import MAX_TOP_LOGPROBS, TokenLogprob, TopLogprob
from edgeweave.generation.sampling import SamplingParams
from edgeweave.generation.tools import (
    OutputSpec,
    ResponseFormat,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolDef,
    call_text,
)
from edgeweave.wire.protocol import Message
from edgeweave.wire.slo import Slo
from edgeweave.wire.uncertainty import UncertaintyRequest, UncertaintyScore

MAX_STOP_SEQUENCES = 4
MAX_CHOICES = 16  # n: sampled answers to one request
MAX_COMPLETION_LOGPROBS = 5  # OpenAI's bound on the completions API's logprobs


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1 << 20)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)  # choices, each sampled (seed + i) with its own logprobs
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    ignore_eos: bool = False  # extension: generate max_tokens tokens
    resume_tokens: list[int] = Field(default_factory=list)  # extension: continue after tokens already generated
    slo: Slo | None = None  # extension: the request's SLO (edgeweave.wire.slo); none: latency with server defaults
    return_token_ids: bool = False  # extension: streamed chat chunks carry each token's id (migration needs them)
    # extension (coordinator): where to answer; auto: the coordinator's policy; escalate: its escalation gate
    prefer: Literal["device", "cloud", "auto", "escalate"] = "auto"
    allow_cost_moves: bool = False  # extension (coordinator): with prefer device/cloud, may a cost move leave it
    uncertainty: UncertaintyRequest | None = None  # extension: score the answer (edgeweave.wire.uncertainty)

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> list[str]:
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > MAX_STOP_SEQUENCES or any(not s for s in stops):
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} non-empty stop sequences")
        return stops

    def sampling(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=list(self.stop or []),
            ignore_eos=self.ignore_eos,
            logprobs=self.top_logprobs_asked,
            output=self.output_spec,
        )

    @property
    def output_spec(self) -> OutputSpec | None:
        """The tools offered and the output's constraint, for the endpoint that decodes (None: free text)."""
        return None

    @property
    def parses_tool_calls(self) -> bool:
        """Answers are returned as ``tool_calls`` when they are calls (chat's function calling)."""
        return False

    @property
    def top_logprobs_asked(self) -> int | None:
        """None: no logprobs; k: each token's logprob and its step's k most likely alternatives."""
        return None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # assistant: the calls it made
    tool_call_id: str | None = None  # tool: the call this message answers

    @model_validator(mode="after")
    def _shape(self) -> ChatMessageIn:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only an assistant message carries tool_calls")
        if self.content is None and not self.tool_calls:
            raise ValueError("content is required (an assistant message may give tool_calls instead)")
        return self

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)

    def to_message(self) -> Message:
        """As the model reads it: calls and tool results in the Hermes format the grammar writes
        (:mod:`edgeweave.generation.constrained`), a tool result as the user's turn."""
        if self.role == "tool":
            return Message(role="user", content=f"<tool_response>{self.text}</tool_response>")
        if self.tool_calls:
            calls = "\n".join(call_text(c.function.name, c.function.arguments) for c in self.tool_calls)
            return Message(role="assistant", content=f"{self.text}\n{calls}" if self.text else calls)
        return Message(role="system" if self.role == "developer" else self.role, content=self.text)


def chat_messages(messages: Sequence[ChatMessageIn]) -> list[Message]:
    """The conversation as the model reads it, consecutive tool results in one turn."""
    out: list[Message] = []
    for m, prev in zip(messages, [None, *messages[:-1]], strict=True):
        msg = m.to_message()
        if m.role == "tool" and prev is not None and prev.role == "tool":
            out[-1] = Message(role="user", content=out[-1].content + msg.content)
        else:
            out.append(msg)
    return out


class ChatCompletionRequest(_Request):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1 << 20)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)  # needs logprobs=true

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and not info.data.get("logprobs"):
            raise ValueError("requires logprobs=true")
        return v

    tools: list[ToolDef] | None = Field(default=None, max_length=128)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    # extension (a coordinator to its endpoints): constrain the output but answer plain text, which the
    # coordinator parses (so that an answer moved mid-stream continues the same text)
    output: OutputSpec | None = None

    @property
    def top_logprobs_asked(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    @property
    def output_spec(self) -> OutputSpec | None:
        if self.output is not None:
            return self.output
        fmt = self.response_format if self.response_format and self.response_format.type != "text" else None
        if not self.tools and fmt is None:
            return None
        return OutputSpec(
            tools=self.tools or [],
            tool_choice=self.tool_choice or "auto",
            response_format=fmt,
            parallel_tool_calls=self.parallel_tool_calls,
        )

    @property
    def parses_tool_calls(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    @field_validator("tools")
    @classmethod
    def _unique_names(cls, v: list[ToolDef] | None) -> list[ToolDef] | None:
        names = [t.function.name for t in v or []]
        if len(set(names)) != len(names):
            raise ValueError("function names must be unique")
        return v

    @field_validator("tool_choice")
    @classmethod
    def _choice_among_tools(cls, v: ToolChoice | None, info: ValidationInfo) -> ToolChoice | None:
        tools = info.data.get("tools")
        if v is not None and not tools:
            raise ValueError("needs tools")
        if v is not None and not isinstance(v, str) and v.function.name not in [t.function.name for t in tools]:
            raise ValueError(f"{v.function.name!r} is not among tools")
        return v

    @field_validator("output")
    @classmethod
    def _output_alone(cls, v: OutputSpec | None, info: ValidationInfo) -> OutputSpec | None:
        if v is not None and (info.data.get("tools") or info.data.get("response_format")):
            raise ValueError("replaces tools and response_format: give one or the other")
        return v

    @model_validator(mode="after")
    def _one_limit(self) -> ChatCompletionRequest:
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise ValueError("max_tokens and max_completion_tokens disagree")
            self.max_tokens = self.max_completion_tokens
        return self


class CompletionRequest(_Request):
    prompt: str | list[int] | list[str]
    max_tokens: int | None = Field(default=16, ge=1, le=1 << 20)  # OpenAI's default for completions
    # strict: a chat-style logprobs=true must not pass as 1
    logprobs: int | None = Field(default=None, ge=0, le=MAX_COMPLETION_LOGPROBS, strict=True)

    @property
    def top_logprobs_asked(self) -> int | None:
        return self.logprobs

    @field_validator("prompt")
    @classmethod
    def _single_prompt(cls, v: str | list[int] | list[str]) -> str | list[int]:
        if isinstance(v, list) and v and isinstance(v[0], str):
            if len(v) != 1:
                raise ValueError("one prompt per request is supported")
            v = v[0]
        if len(v) == 0:
            raise ValueError("prompt is empty")
        return v  # type: ignore[return-value]


# --- responses --------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float | None = None  # extension: what the coordinator's endpoints spent on the answer
    # extension, with `uncertainty`: the extra generations the score needed (not in the counts above)
    uncertainty_prompt_tokens: int | None = None
    uncertainty_completion_tokens: int | None = None

    @model_serializer(mode="wrap")
    def _omit_unknown_extensions(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        out: dict[str, object] = handler(self)
        for key in ("cost_usd", "uncertainty_prompt_tokens", "uncertainty_completion_tokens"):
            if out.get(key) is None:
                out.pop(key, None)
        return out

    @classmethod
    def of(
        cls, prompt: int, completion: int, cost_usd: float | None = None, uncertainty: UncertaintyScore | None = None
    ) -> Usage:
        total = prompt + completion
        extra = uncertainty
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=total,
            cost_usd=cost_usd,
            uncertainty_prompt_tokens=extra.prompt_tokens if extra else None,
            uncertainty_completion_tokens=extra.completion_tokens if extra else None,
        )


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = Field(default=None, exclude_if=lambda v: v is None)


class ChatTopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]
    # extension, when the request asked for token ids (return_token_ids); absent otherwise, as in OpenAI
    id: int | None = Field(default=None, exclude_if=lambda v: v is None)

    @classmethod
    def of(cls, lp: TopLogprob, with_id: bool = False) -> ChatTopLogprob:
        return cls(token=lp.token, logprob=lp.logprob, bytes=lp.bytes, id=lp.id if with_id else None)


class ChatTokenLogprob(ChatTopLogprob):
    top_logprobs: list[ChatTopLogprob]


class ChatLogprobs(BaseModel):
    """A chat choice's ``logprobs``: one entry per token (per chunk's tokens when streaming).  With
    ``with_ids`` (edgeweave's return_token_ids) each entry carries its token id too, so a coordinator
    relays them as :class:`~edgeweave.generation.logprobs.TokenLogprob` and across a migration."""

    content: list[ChatTokenLogprob]

    @classmethod
    def of(cls, tokens: Sequence[TokenLogprob], with_ids: bool = False) -> ChatLogprobs:
        def entry(lp: TokenLogprob) -> ChatTokenLogprob:
            top = [ChatTopLogprob.of(t, with_ids) for t in lp.top_logprobs]
            chosen = ChatTopLogprob.of(lp, with_ids)
            return ChatTokenLogprob(**chosen.model_dump(), top_logprobs=top)

        return cls(content=[entry(lp) for lp in tokens])


class CompletionLogprobs(BaseModel):
    """A completion choice's ``logprobs``, OpenAI's legacy shape: parallel lists over the tokens.
    ``top_logprobs[i]`` maps token text to logprob for the step's alternatives and, as OpenAI's, the chosen
    token (so up to k+1 entries; a text several of them share keeps the most likely one's);
    ``text_offset[i]``: where token i's text begins in the choice's text."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]

    @classmethod
    def of(cls, tokens: Sequence[TokenLogprob], offsets: Sequence[int]) -> CompletionLogprobs:
        def top(lp: TokenLogprob) -> dict[str, float]:
            ascending = sorted((lp, *lp.top_logprobs), key=lambda t: t.logprob)  # the most likely is written last
            return {t.token: t.logprob for t in ascending}

        return cls(
            tokens=[lp.token for lp in tokens],
            token_logprobs=[lp.logprob for lp in tokens],
            top_logprobs=[top(lp) for lp in tokens],
            text_offset=list(offsets),
        )


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: ChatLogprobs | None = None


class _Response(BaseModel):
    id: str
    created: int = Field(default_factory=now)
    model: str
    usage: Usage | None = None
    system_fingerprint: str | None = None  # which endpoint served it ("device:pi-1", "cloud:gpu")
    # extension, when the request asked (`uncertainty`): the score of choice 0; streaming: in the last chunk
    uncertainty: UncertaintyScore | None = Field(default=None, exclude_if=lambda v: v is None)


class ChatCompletion(_Response):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    token_ids: list[int] | None = None  # extension, when the request asked (return_token_ids)


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: ChatLogprobs | None = None


class ChatCompletionChunk(_Response):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None


class Completion(_Response):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
