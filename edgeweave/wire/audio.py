"""``POST /v1/audio/generations``: text-to-audio request and response bodies (SoundWeaver's front door).

A request names a ``prompt`` (non-empty), a ``duration`` (1-10 s), the schedule's ``steps``
(the model's default when absent) and ``solver`` (``ddim``, or ``dpm``: DPM-Solver++), a
``seed``, the ``format`` (``wav`` or ``flac``) and how the audio comes back
(``response_format``): ``audio`` (the file itself, its generation facts in ``X-Edgeweave-*``
headers), ``url`` (JSON with a URL to ``GET /v1/audio/files/{id}``) or ``b64_json`` (JSON with
the file base64-encoded).  ``stream: true`` sends Server-Sent Events: one ``progress`` event per
denoising step, then the :class:`AudioGeneration` (which then cannot be ``audio``: an SSE stream
carries JSON).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeweave.audio.corpus import MAX_DURATION, MIN_DURATION
from edgeweave.audio.solvers import Solver

AudioFormat = Literal["wav", "flac"]
MAX_STEPS = 200
MAX_PROMPT_CHARS = 1000
AUDIO_GENERATIONS = "/v1/audio/generations"
AUDIO_FILES = "/v1/audio/files/"


class AudioGenerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str = Field(max_length=MAX_PROMPT_CHARS)
    duration: float = Field(default=5.0, ge=MIN_DURATION, le=MAX_DURATION)
    steps: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    solver: Solver = "ddim"
    seed: int = Field(default=0, ge=0, lt=2**31)
    format: AudioFormat = "wav"
    response_format: Literal["audio", "url", "b64_json"] = "audio"
    stream: bool = False

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the prompt must say what sound to make (it is empty)")
        return v.strip()


class AudioGeneration(BaseModel):
    """What one generation was: the audio (a URL or base64) and how it was made."""

    id: str
    object: Literal["audio.generation"] = "audio.generation"
    model: str
    format: AudioFormat
    duration: float
    sample_rate: int
    steps: int  # the schedule's length
    solver: Solver
    steps_run: int  # denoising steps actually run (a warm start skips the rest)
    cache_hit: bool
    reference: str | None = None  # the cached sound's caption it started from
    similarity: float = 0.0
    quality: float  # the online judge's text-audio score (CLAP-style, trained here)
    latency_s: float
    url: str | None = None
    b64_json: str | None = None


class AudioProgress(BaseModel):
    object: Literal["audio.progress"] = "audio.progress"
    step: int
    total: int
