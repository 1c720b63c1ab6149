"""Log-probabilities of generated tokens, as OpenAI's ``logprobs`` / ``top_logprobs`` report them.

One definition for every tier: the log-softmax of the model's raw logits at that step (before
temperature, top-k and top-p), computed in float64 from the runtime's float32 logits, for the
chosen token and the ``top`` most likely ones (ties broken by the lower id).  Raw rather than
processed, so a device's and the cloud's figures for the same model compare, whatever sampler each
request used (vLLM's default too).  Uncertainty scores and agents read them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict

MAX_TOP_LOGPROBS = 20  # OpenAI's bound on top_logprobs


class TopLogprob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int
    token: str  # the token's bytes decoded with replacement (a byte-level piece may be part of a character)
    bytes: list[int]
    logprob: float


class TokenLogprob(TopLogprob):
    """The chosen token's log-probability and the ``top`` most likely alternatives at its step."""

    top_logprobs: list[TopLogprob] = []


def token_logprob(logits: np.ndarray, token: int, top: int, token_bytes: Callable[[int], bytes]) -> TokenLogprob:
    """``logits``: the step's raw logits over the vocabulary (1-D)."""
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    shifted = z - z.max()
    logp = shifted - np.log(np.exp(shifted).sum())
    order = np.lexsort((np.arange(z.size), -logp))[: max(0, min(top, MAX_TOP_LOGPROBS))]

    def entry(i: int) -> TopLogprob:
        raw = token_bytes(i)
        return TopLogprob(id=i, token=raw.decode("utf-8", "replace"), bytes=list(raw), logprob=float(logp[i]))

    chosen = entry(int(token))
    return TokenLogprob(**chosen.model_dump(), top_logprobs=[entry(int(i)) for i in order])
