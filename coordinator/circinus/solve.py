"""Circinus end to end (pure): plan every query of a workload, then select globally.

:func:`solve` runs :class:`coordinator.circinus.planner.Planner` over the
queries (plans reused across similar queries) and
:func:`coordinator.circinus.selection.select` over what it found, and
reports the selection with the search and profiling steps it took.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.circinus.planner import DEFAULT_K, Catalog, Planner
from coordinator.circinus.profiles import Profiler, Tiers
from coordinator.circinus.selection import Selection, select
from coordinator.circinus.spec import PipelineTier, Workload


@dataclass(frozen=True)
class Solution:
    selection: Selection
    search_steps: int
    profiling_steps: int


def solve(
    workload: Workload,
    catalog: Catalog,
    tiers: Tiers,
    profiler: Profiler,
    k: int | None = DEFAULT_K,
    tiers_allowed: frozenset[PipelineTier] | None = None,
    reuse: bool = True,
) -> Solution:
    planner = Planner(catalog, tiers, profiler, k, tiers_allowed, reuse)
    candidates = {q.id: planner.plans(workload.pipeline(q.pipeline), q.slo) for q in workload.queries}
    selection = select(workload.queries, candidates, tiers.capacity)
    return Solution(selection, planner.steps, profiler.steps)
