"""OpenAI's ``/v1/embeddings``: request and response bodies.

Served by the cloud service and the coordinator with the MiniLM sentence embedder
(:mod:`edgeweave.models.embedder`), which the uncertainty measures use too.  ``input`` is a
string or a list of strings (token-id inputs are refused, naming the field); ``encoding_format`` is
``float`` or ``base64`` (little-endian float32, as OpenAI's clients decode it); ``dimensions`` is
refused (MiniLM has no shortened embeddings).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_EMBEDDING_INPUTS = 2048  # OpenAI's bound on inputs per request
MAX_EMBEDDING_CHARS = 32_768  # per input; the embedder truncates to its own window (256 word pieces)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _texts(cls, v: str | list[str]) -> str | list[str]:
        texts = [v] if isinstance(v, str) else v
        if not texts or len(texts) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"give 1 to {MAX_EMBEDDING_INPUTS} inputs")
        if any(not t or len(t) > MAX_EMBEDDING_CHARS for t in texts):
            raise ValueError(f"each input must be a non-empty string of at most {MAX_EMBEDDING_CHARS} characters")
        return v

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
