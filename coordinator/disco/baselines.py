"""The dispatch baselines DiSCo is measured against, as planners like :meth:`DiscoPolicy.plan`
(pure): one endpoint always, a random split at the same budget, or always racing both."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from coordinator.cluster.placement import Tier
from coordinator.disco.migration import other
from coordinator.disco.policy import DispatchPlan


@dataclass(frozen=True)
class Only:
    tier: Tier

    @property
    def name(self) -> str:
        return f"{self.tier}-only"

    def plan(self, prompt_tokens: int) -> DispatchPlan:
        return DispatchPlan(self.tier)


@dataclass
class RandomSplit:
    """Each request goes to ``constrained`` with probability ``budget`` (the budget in expectation)."""

    constrained: Tier
    budget: float
    seed: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def name(self) -> str:
        return "random-split"

    def plan(self, prompt_tokens: int) -> DispatchPlan:
        return DispatchPlan(self.constrained if self._rng.random() < self.budget else other(self.constrained))


@dataclass(frozen=True)
class AlwaysRace:
    name: str = "always-race"

    def plan(self, prompt_tokens: int) -> DispatchPlan:
        return DispatchPlan("device", "cloud")
