"""The planners Circinus is compared with (pure), on the same catalog, tiers and profiler interface.

- :func:`exhaustive`: every plan of every query (all configurations x tiers,
  no pruning, no reuse) scored, those meeting the SLO kept, then the exact
  global selection over all of them: the optimum, slowly.
- :func:`greedy`: queries one at a time in arrival order, each taking its
  cheapest plan meeting the SLO that still fits the capacity left (every plan
  enumerated; no look-ahead across queries).
- single-tier planning is Circinus's own planner and selection restricted to
  one tier (``Planner(tiers_allowed=...)``): all cloud, or all edge.
- profiling without early stopping is Circinus with
  ``Profiler(early_stop=False)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from coordinator.circinus.planner import Catalog, Choice, PipelinePlan, Scored, meets, score
from coordinator.circinus.profiles import Profiler, Tiers
from coordinator.circinus.selection import Selection, select, summarize
from coordinator.circinus.spec import Pipeline, PipelineTier, Workload


def every_plan(pipeline: Pipeline, catalog: Catalog) -> Iterator[PipelinePlan]:
    per_op = [
        [Choice(o, cfg, t) for cfg in pipeline.operator(o).configs for t in pipeline.operator(o).tiers
         if (cfg.key, t) in catalog]
        for o in pipeline.order
    ]  # fmt: skip
    for combo in itertools.product(*per_op):
        yield PipelinePlan(pipeline.name, tuple(combo))


@dataclass
class Enumerated:
    """Every plan meeting each query's SLO; ``steps``: plans scored."""

    feasible: dict[str, list[Scored]]
    steps: int


def enumerate_all(workload: Workload, catalog: Catalog, tiers: Tiers, profiler: Profiler) -> Enumerated:
    feasible: dict[str, list[Scored]] = {}
    steps = 0
    for pipeline, queries in workload.by_pipeline():
        scored = [score(p, pipeline, catalog, tiers, profiler) for p in every_plan(pipeline, catalog)]
        for q in queries:
            steps += len(scored)
            ok = [s for s in scored if meets(s, pipeline, q.slo, catalog, tiers, profiler)]
            feasible[q.id] = sorted(ok, key=lambda s: s.cost_usd)
    return Enumerated(feasible, steps)


def exhaustive(workload: Workload, catalog: Catalog, tiers: Tiers, profiler: Profiler) -> tuple[Selection, int]:
    found = enumerate_all(workload, catalog, tiers, profiler)
    return select(workload.queries, found.feasible, tiers.capacity), found.steps


def greedy(workload: Workload, catalog: Catalog, tiers: Tiers, profiler: Profiler) -> tuple[Selection, int]:
    found = enumerate_all(workload, catalog, tiers, profiler)
    left = dict(tiers.capacity)
    chosen: dict[str, Scored] = {}
    for q in workload.queries:
        for s in found.feasible[q.id]:
            if all(q.rate * busy <= left.get(t, 0.0) + 1e-12 for t, busy in s.busy_s):
                for t, busy in s.busy_s:
                    left[t] -= q.rate * busy
                chosen[q.id] = s
                break
    return summarize(workload.queries, chosen), found.steps


FEASIBILITY_TOL = 1e-6  # HiGHS's primal feasibility tolerance: a constraint may be exceeded by this much


def within(selection: Selection, capacity: Mapping[PipelineTier, float]) -> bool:
    """Whether a selection respects every tier's capacity (tests and the benchmark check it), up to the
    solver's feasibility tolerance."""
    return all(used <= capacity.get(t, 0.0) + FEASIBILITY_TOL for t, used in selection.load.items())
