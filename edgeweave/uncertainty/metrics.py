"""How well an uncertainty score predicts wrong answers: AUROC, PRR, Brier after isotonic calibration.

As the Inv-Entropy paper reports them: AUROC of -U against correctness (1: the score ranks every
right answer as more certain than every wrong one); the prediction rejection ratio (Malinin et al.
2017), the area between the accuracy-vs-rejection curve of the score and of random rejection, over
the same area for the oracle; and the Brier score of an isotonic map from -U to P(correct),
cross-fitted (each fold's predictions come from a fit on the other folds, so it is not scored on
the data it was fitted to).  Intervals come from a paired bootstrap that resamples (score, label)
pairs together; the authors' baseline script drew scores and labels with independent indices,
which breaks the pairing and pulls every AUROC toward 0.5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

Metric = Callable[[np.ndarray, np.ndarray], float]


def _arrays(scores: Sequence[float], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    u, y = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    if u.shape != y.shape or u.ndim != 1:
        raise ValueError("scores and correct must be equal-length 1-D sequences")
    return u, y


def auroc(scores: Sequence[float], correct: Sequence[bool]) -> float:
    """AUROC of -U for correctness; NaN when every answer is right or every one wrong."""
    u, y = _arrays(scores, correct)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, -u))


def _rejection_area(order: np.ndarray, y: np.ndarray) -> float:
    """Mean accuracy of the kept answers over rejection fractions 0..(n-1)/n, rejecting in ``order``."""
    kept = y[order[::-1]]  # the most certain last rejected: accuracy of the first n - j kept
    acc = np.cumsum(kept)[::-1] / np.arange(len(y), 0, -1)
    return float(acc.mean())


def prr(scores: Sequence[float], correct: Sequence[bool]) -> float:
    """(AR_score - AR_random) / (AR_oracle - AR_random); 1 is the oracle, 0 random."""
    u, y = _arrays(scores, correct)
    if y.min() == y.max():
        return float("nan")
    random = float(y.mean())
    by_score = _rejection_area(np.argsort(-u, kind="stable"), y)  # reject the most uncertain first
    oracle = _rejection_area(np.argsort(y, kind="stable"), y)  # reject the wrong ones first
    return (by_score - random) / (oracle - random)


def brier_isotonic(scores: Sequence[float], correct: Sequence[bool], folds: int = 5, seed: int = 0) -> float:
    """Brier score of a cross-fitted isotonic P(correct | -U)."""
    u, y = _arrays(scores, correct)
    pred = np.empty_like(y)
    splits = KFold(n_splits=min(folds, len(y)), shuffle=True, random_state=seed).split(u)
    for train, test in splits:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(-u[train], y[train])
        pred[test] = iso.predict(-u[test])
    return float(np.mean((pred - y) ** 2))


@dataclass(frozen=True)
class Interval:
    low: float  # 2.5th percentile
    mid: float  # the metric on the full sample
    high: float  # 97.5th percentile


def paired_bootstrap(
    metric: Metric | Callable[[Sequence[float], Sequence[bool]], float],
    scores: Sequence[float],
    correct: Sequence[bool],
    n: int = 100,
    seed: int = 0,
) -> Interval:
    """The metric and its 95% interval over ``n`` resamples of (score, label) pairs (resamples where
    the metric is undefined, e.g. one class only, are left out)."""
    u, y = _arrays(scores, correct)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(u), size=len(u))
        v = metric(u[idx], y[idx])
        if np.isfinite(v):
            values.append(v)
    mid = metric(u, y)
    if not values:
        return Interval(float("nan"), mid, float("nan"))
    low, high = np.percentile(values, [2.5, 97.5])
    return Interval(float(low), mid, float(high))
