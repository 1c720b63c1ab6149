"""How long one engine iteration takes: the simulator's clock and Tempo's time estimates.

A linear model of the iteration's wall time in what it computes: a fixed
cost, the tokens computed (prefill chunks and decodes), the sequences in the
batch (sampling, bookkeeping) and the cached keys its attention reads.  It is
fitted by least squares from measured iterations of the real engine
(:func:`fit`), so the simulator runs on this machine's engine, and it is what
Tempo uses to turn remaining tokens into remaining time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud.engine.stats import StepSample


@dataclass(frozen=True)
class StepTime:
    base_s: float
    per_token_s: float
    per_seq_s: float
    per_kv_token_s: float

    def __call__(self, tokens: int, seqs: int, kv_tokens: int) -> float:
        return self.base_s + self.per_token_s * tokens + self.per_seq_s * seqs + self.per_kv_token_s * kv_tokens

    def decode_step_s(self, batch: int, mean_context: float) -> float:
        """An iteration in which ``batch`` sequences decode one token each."""
        return self(batch, batch, int(batch * mean_context))

    def describe(self) -> str:
        return (
            f"{self.base_s * 1e3:.2f} ms + {self.per_token_s * 1e6:.1f} us/token + {self.per_seq_s * 1e6:.1f} us/seq"
            f" + {self.per_kv_token_s * 1e9:.2f} ns/cached key"
        )


def _nonneg_lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    keep = np.ones(x.shape[1], dtype=bool)
    while True:  # drop terms that come out negative (collinear on the samples) and refit
        coef = np.zeros(x.shape[1])
        coef[keep] = np.linalg.lstsq(x[:, keep], y, rcond=None)[0]
        if (coef >= 0).all():
            return coef
        keep &= coef > 0


def fit(samples: Sequence[StepSample]) -> tuple[StepTime, float, int]:
    """Least-squares fit with non-negative terms, refitted without the outliers (iterations
    more than 5 robust standard deviations off: a shared machine's stalls); returns the model,
    its R^2 on the samples kept, and how many were dropped."""
    if len(samples) < 8:
        raise ValueError(f"need at least 8 measured iterations to fit, got {len(samples)}")
    x = np.asarray([[1.0, s.tokens, s.seqs, s.kv_tokens] for s in samples])
    y = np.asarray([s.seconds for s in samples])
    res = y - x @ _nonneg_lstsq(x, y)
    sigma = 1.4826 * float(np.median(np.abs(res - np.median(res))))
    inlier = np.abs(res - np.median(res)) <= 5 * sigma if sigma > 0 else np.ones(len(y), dtype=bool)
    x, y = x[inlier], y[inlier]
    coef = _nonneg_lstsq(x, y)
    r2 = 1.0 - float(((y - x @ coef) ** 2).sum()) / max(float(((y - y.mean()) ** 2).sum()), 1e-18)
    return StepTime(*(float(c) for c in coef)), r2, int((~inlier).sum())
