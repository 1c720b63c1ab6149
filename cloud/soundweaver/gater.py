"""SoundWeaver's skip gater (arXiv 2603.07865): a contextual bandit choosing how much of the schedule a
warm start skips, learning online.

Arms are skip fractions (0 runs the full schedule from the noised reference's top, i.e. ignores
it); the context is (1, similarity, |log duration ratio|, the entry's quality, load).  The bandit
is disjoint LinUCB (Li et al., WWW 2010): a ridge regression per arm, the arm with the highest
upper confidence bound wins.  The reward of a served request is the time saved (the skip fraction)
minus ``quality_weight`` x the quality lost, where quality lost is the shortfall of the result's
online judge score from the running mean score of full-step results (:class:`QualityBar`), as a
fraction of it.  So the gater learns to skip deep where similar, well-aligned, good references make
skipping free, and shallow where they do not.

The paper names the features and the reward's two terms; the arm set, LinUCB and the reward's
exact shape are our choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_ARMS = (0.0, 0.3, 0.5, 0.65, 0.75, 0.85, 0.9)


@dataclass(frozen=True)
class GateContext:
    similarity: float
    duration_ratio: float
    quality: float  # the reference's judge score
    load: float  # requests waiting, scaled into [0, 1]

    def vector(self) -> np.ndarray:
        return np.array([1.0, self.similarity, abs(math.log(self.duration_ratio)), self.quality, self.load])


@dataclass(frozen=True)
class GaterOptions:
    arms: tuple[float, ...] = DEFAULT_ARMS
    alpha: float = 0.3  # exploration width
    ridge: float = 1.0
    quality_weight: float = 3.0
    prior_skip: float = 0.6  # before any reward, an arm's estimate is its skip, capped at this


class QualityBar:
    """The running mean judge score of full-step results: the quality a warm start should keep."""

    def __init__(self, start: float = 0.5) -> None:
        self.mean = start
        self.n = 0

    def observe(self, score: float) -> None:
        self.n += 1
        self.mean += (score - self.mean) / self.n


class SkipGater:
    def __init__(self, options: GaterOptions | None = None) -> None:
        self.options = o = options or GaterOptions()
        d = 5
        self._a = [np.eye(d) * o.ridge for _ in o.arms]
        # the prior: an arm's expected reward before data is its skip, capped (deeper is not assumed free)
        self._b = [np.eye(d)[0] * o.ridge * min(s, o.prior_skip) for s in o.arms]
        self.pulls = [0] * len(o.arms)

    def choose(self, ctx: GateContext) -> int:
        """The arm (an index into ``options.arms``) for a request with context ``ctx``."""
        x = ctx.vector()
        best, best_ucb = 0, -math.inf
        for i in range(len(self.options.arms)):
            inv = np.linalg.inv(self._a[i])
            theta = inv @ self._b[i]
            ucb = float(theta @ x + self.options.alpha * math.sqrt(float(x @ inv @ x)))
            if ucb > best_ucb:
                best, best_ucb = i, ucb
        return best

    def reward(self, arm: int, quality: float, bar: QualityBar) -> float:
        lost = max(bar.mean - quality, 0.0) / max(bar.mean, 1e-6)
        return self.options.arms[arm] - self.options.quality_weight * lost

    def update(self, ctx: GateContext, arm: int, reward: float) -> None:
        x = ctx.vector()
        self._a[arm] += np.outer(x, x)
        self._b[arm] += reward * x
        self.pulls[arm] += 1
