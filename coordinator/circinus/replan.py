"""Circinus at run time (pure): watch what the executor sees and say when to plan again, and plan
again from what was seen.

Two triggers:

- a tier fails (a device left, a service is unreachable): it is marked down
  and the next plan leaves it out of the search, so no query stays on it and
  nothing is profiled there;
- a query's SLO attainment over its last ``window`` invocations drops below
  ``min_attainment``: the profiles were too optimistic (a tier got busier),
  so the operator times the executor observed are added to the profiler's
  samples before planning again.

:meth:`Replanner.replan` re-runs the whole planning (search and selection)
with those changes; the caller swaps the plans in.  The same object works in
the live app and in tests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from coordinator.circinus.planner import Catalog, Scored
from coordinator.circinus.profiles import Profiler, Tiers
from coordinator.circinus.solve import Solution, solve
from coordinator.circinus.spec import PipelineTier, Workload


@dataclass
class Replanner:
    workload: Workload
    catalog: Catalog
    tiers: Tiers
    profiler: Profiler
    window: int = 20
    min_attainment: float = 0.8
    down: set[PipelineTier] = field(default_factory=set)
    replans: int = 0
    _met: dict[str, deque[bool]] = field(default_factory=dict)

    def observe(self, query: str, met: bool, compute_s: Mapping[tuple[str, PipelineTier], float]) -> None:
        """One invocation of ``query``: whether it met its SLO and each (configuration, tier)'s time."""
        self._met.setdefault(query, deque(maxlen=self.window)).append(met)
        for key, seconds in compute_s.items():
            self.profiler.samples.setdefault(key, []).append(seconds)

    def failed(self, tier: PipelineTier) -> None:
        self.down.add(tier)

    def attainment(self, query: str) -> float | None:
        seen = self._met.get(query)
        return sum(seen) / len(seen) if seen else None

    def due(self, chosen: Mapping[str, Scored]) -> str | None:
        """Why plans must be redone now, or None."""
        stranded = sorted(q for q, s in chosen.items() if any(t in self.down for t, _ in s.busy_s))
        if stranded:
            return f"tier {', '.join(sorted(self.down))} down under {', '.join(stranded)}"
        for q, seen in sorted(self._met.items()):
            if len(seen) == self.window and sum(seen) / len(seen) < self.min_attainment:
                return f"{q} met its SLO in {sum(seen)} of its last {len(seen)} invocations"
        return None

    def replan(self) -> Solution:
        self.replans += 1
        self._met.clear()  # attainment starts over under the new plans
        up = frozenset(self.tiers.capacity) - self.down  # a tier that is down is not searched (nor profiled)
        return solve(self.workload, self.catalog, self.tiers, self.profiler, tiers_allowed=up)
