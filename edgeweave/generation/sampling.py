"""Sampling parameters and the one sampler every backend shares.

Backends only produce logits; choosing the next token happens here, so the
same request gives the same tokens on torch, llama.cpp and ExecuTorch (exactly
for greedy decoding; for seeded sampling up to logit differences between
runtimes).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeweave.generation.tools import OutputSpec


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=128, ge=1, le=1 << 20)
    temperature: float = Field(default=0.0, ge=0.0, le=10.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    ignore_eos: bool = False  # keep generating past end-of-turn (fixed-length benchmarks)
    # None: no log-probabilities; k >= 0: each token's own and its step's k most likely alternatives
    # (edgeweave.generation.logprobs; OpenAI's logprobs=true with top_logprobs=k)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    # tools offered and the output's constraint (edgeweave.generation.constrained): rendered into the
    # prompt by the endpoint that decodes, and enforced there token by token
    output: OutputSpec | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def for_choice(self, i: int) -> SamplingParams:
        """Choice ``i`` of a request asking for ``n`` (OpenAI's): seeded ``seed + i``, so seeded choices
        differ from each other and repeat across calls (unseeded ones each draw a fresh RNG anyway)."""
        return self if self.seed is None or i == 0 else self.model_copy(update={"seed": self.seed + i})


class Sampler:
    """Picks tokens from logits under one request's parameters (keeps its RNG)."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def __call__(self, logits: np.ndarray) -> int:
        p = self.params
        if p.greedy:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / p.temperature
        if p.top_k and p.top_k < z.size:
            kth = np.partition(z, -p.top_k)[-p.top_k]
            z = np.where(z >= kth, z, -np.inf)
        probs = np.exp(z - z.max())
        probs /= probs.sum()
        if p.top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            cum = np.cumsum(probs[order])
            keep = order[: int(np.searchsorted(cum, p.top_p) + 1)]
            mask = np.zeros_like(probs)
            mask[keep] = probs[keep]
            probs = mask / mask.sum()
        return int(self.rng.choice(probs.size, p=probs))
