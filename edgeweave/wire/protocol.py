"""The device wire protocol: typed bodies and stream events shared by the
device daemon (which serves them) and the coordinator (which calls it).

``POST /v1/generate`` takes a :class:`GenerateRequest` and answers with server-
sent events: one ``start``, a ``token`` per generated token, then ``done``
(or ``error``).  Token ids travel with the text so the coordinator can move a
half-finished answer to another endpoint (DiSCo) by sending them back as
``resume_tokens``.

``POST /v1/prefill`` takes a :class:`PrefillRequest`: it evaluates a prompt (and
any tokens generated elsewhere) into the device's prompt cache without
generating, so that a later ``generate`` of the same context prefills only what
was added since (DiSCo's warm target before a move).  It answers
:class:`PrefillResult`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeweave.generation.logprobs import TokenLogprob
from edgeweave.generation.sampling import SamplingParams
from edgeweave.wire.uncertainty import UncertaintyRequest, UncertaintyScore

Role = Literal["system", "user", "assistant"]
REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Wire):
    role: Role
    content: str


class GenerateRequest(_Wire):
    model: str | None = None  # default: the device's first model
    prompt: str | list[int] | None = None  # raw text (no chat template) or token ids
    messages: list[Message] | None = None  # rendered with the model's chat template
    resume_tokens: list[int] = Field(default_factory=list)  # already generated elsewhere: continue after them
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    # when sampling.max_tokens exceeds the room left in the context: generate to the
    # context's end instead of refusing (OpenAI's behaviour when max_tokens is omitted)
    clamp_max_tokens: bool = False
    request_id: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)
    n: int = Field(default=1, ge=1, le=16)  # choices sampled (choice i with seed + i), streamed interleaved
    uncertainty: UncertaintyRequest | None = None  # score choice 0: the score comes in the done event

    @model_validator(mode="after")
    def _one_prompt(self) -> GenerateRequest:
        _check_one_prompt(self.prompt, self.messages)
        return self


def _check_one_prompt(prompt: str | list[int] | None, messages: list[Message] | None) -> None:
    if (prompt is None) == (messages is None):
        raise ValueError("give exactly one of prompt and messages")
    if prompt is not None and len(prompt) == 0:
        raise ValueError("prompt is empty")
    if messages is not None and not messages:
        raise ValueError("messages is empty")


class StreamEvent(_Wire):
    event: ClassVar[str]


class StartEvent(StreamEvent):
    event: ClassVar[str] = "start"
    id: str
    model: str
    device: str
    backend: str
    prompt_tokens: int


class TokenMessage(StreamEvent):
    event: ClassVar[str] = "token"
    index: int
    id: int
    text: str
    t: float  # seconds since the request started on the device
    logprob: TokenLogprob | None = None  # when the request's sampling asked for logprobs
    choice: int = 0  # which of the request's n choices the token belongs to (index counts per choice)


class DoneEvent(StreamEvent):
    event: ClassVar[str] = "done"
    finish_reason: Literal["stop", "length", "cancelled"]
    prompt_tokens: int
    completion_tokens: int  # n > 1: over all choices
    ttft_s: float
    decode_tok_s: float
    energy_j: float  # estimated, from the device's power model
    cached_tokens: int = 0  # prompt (+ resume) tokens reused from the prompt cache, not prefilled again
    finish_reasons: list[Literal["stop", "length", "cancelled"]] = Field(default_factory=list)  # n > 1: per choice
    uncertainty: UncertaintyScore | None = None  # when the request asked: choice 0's score


class PrefillRequest(_Wire):
    """Warm the prompt cache with a context; nothing is generated."""

    model: str | None = None
    prompt: str | list[int] | None = None
    messages: list[Message] | None = None
    resume_tokens: list[int] = Field(default_factory=list)
    request_id: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)

    @model_validator(mode="after")
    def _one_prompt(self) -> PrefillRequest:
        _check_one_prompt(self.prompt, self.messages)
        return self


class PrefillResult(_Wire):
    model: str
    prompt_tokens: int  # context length evaluated (prompt + resume tokens)
    cached_tokens: int  # of those, already in the cache before this call
    prefill_s: float
    energy_j: float  # estimated marginal energy of the prefill


class ErrorBody(_Wire):
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None


class ErrorEvent(StreamEvent):
    event: ClassVar[str] = "error"
    error: ErrorBody


class ModelInfo(_Wire):
    name: str
    backend: str
    context_length: int
    vocab_size: int
    threads: int | None
    max_queue: int
    slots: int = 1  # answers the device decodes at once; it holds slots + max_queue requests


class DeviceInfo(_Wire):
    id: str
    kind: str
    version: str
    cores: int
    memory_mb: float
    models: list[ModelInfo]
    power_idle_w: float
    power_max_w: float


class BackendLoad(_Wire):
    model: str
    backend: str
    running: int
    queued: int
    max_queue: int
    completed: int
    rejected: int
    decode_tok_s: float  # moving average of measured decode speed
    prefill_tok_s: float
    joules_per_token: float  # estimated marginal energy of one decoded token


class Telemetry(_Wire):
    device: str
    time: float
    cpu_percent: float
    memory_used_mb: float
    memory_total_mb: float
    load_avg: tuple[float, float, float] | None
    battery_percent: float | None
    power_plugged: bool | None
    temperatures_c: dict[str, float]
    power_w: float  # estimated now, from the power model and CPU utilisation
    energy_j: float  # estimated since the daemon started
    backends: list[BackendLoad]
