"""Circinus's planner (pure): for each query, a few cheap plans that meet its SLO, found by a
decomposed branch-and-bound search that reuses what similar queries found; then one plan per query
chosen for all queries at once (:mod:`coordinator.circinus.selection`).

A plan gives every operator of a pipeline a configuration and a tier.  Its
latency is the longest path (operators' profiled latencies plus transfers
between tiers, from the source tier and back); its accuracy the product of
its operators'; its cost the sum.

Decomposition:

- *per operator*: each operator's options (configuration x allowed tier) are
  reduced once per pipeline to those no other option on the same tier
  dominates in latency, accuracy, cost and load; every query of the pipeline
  reuses them;
- *per SLO dimension*: the search walks operators in topological order and
  prunes a partial plan as soon as a bound on one dimension fails: accuracy
  (the chosen product times the best remaining), cost (chosen plus cheapest
  remaining, against the cap and the K-th cheapest plan found so far) and
  latency (the partial longest path with optimistic remaining operators);
- *per query, against the others*: the search keeps the feasible plans no
  other feasible plan beats on both cost and every tier's load (and prunes a
  partial plan one of them already beats) and hands them all to the
  selection (or, with ``k``, K of them: the cheapest, the one loading each
  tier least, the next cheapest), so the global selection can trade cost for
  load on a busy tier.

Plan similarity: a query whose pipeline and SLO were planned before reuses
those plans outright (no search); otherwise the plans found for the same
pipeline under other SLOs that also meet this one seed the search's
incumbents, so its cost bound prunes from the first step.  Each node the
search expands is one *search step*; latency decisions go through the
precision-aware :class:`coordinator.circinus.profiles.Profiler`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from coordinator.circinus.profiles import OpStats, Profiler, Tiers
from coordinator.circinus.spec import SLO, OperatorConfig, Pipeline, PipelineTier

Catalog = Mapping[tuple[str, PipelineTier], OpStats]  # (configuration key, tier) -> what it was measured at
DEFAULT_K: int | None = None  # hand the selection every non-dominated plan (measured: K = 4 lost ~10% goodput)


@dataclass(frozen=True)
class Choice:
    op: str
    config: OperatorConfig
    tier: PipelineTier

    @property
    def key(self) -> tuple[str, PipelineTier]:
        return (self.config.key, self.tier)


@dataclass(frozen=True)
class PipelinePlan:
    pipeline: str
    choices: tuple[Choice, ...]  # in the pipeline's topological order

    def choice(self, op: str) -> Choice:
        return next(c for c in self.choices if c.op == op)


@dataclass(frozen=True)
class Scored:
    plan: PipelinePlan
    latency_s: float  # mean estimate of the longest path
    accuracy: float
    cost_usd: float  # per invocation
    busy_s: tuple[tuple[PipelineTier, float], ...]  # compute-seconds per invocation, per tier

    def load(self, tier: PipelineTier) -> float:
        return dict(self.busy_s).get(tier, 0.0)


def _transfer_s(pipeline: Pipeline, choices: Mapping[str, Choice], catalog: Catalog, tiers: Tiers,
                 path: Sequence[str]) -> float:  # fmt: skip
    """Transfer time along ``path``: source -> first, between operators, last -> source."""
    t = tiers.hop_s(tiers.source, choices[path[0]].tier, pipeline.input_bytes)
    for a, b in zip(path, path[1:], strict=False):
        t += tiers.hop_s(choices[a].tier, choices[b].tier, catalog[choices[a].key].output_bytes)
    return t + tiers.hop_s(choices[path[-1]].tier, tiers.source, catalog[choices[path[-1]].key].output_bytes)


def score(plan: PipelinePlan, pipeline: Pipeline, catalog: Catalog, tiers: Tiers, profiler: Profiler) -> Scored:
    by_op = {c.op: c for c in plan.choices}
    latency = max(
        _transfer_s(pipeline, by_op, catalog, tiers, p) + sum(profiler.mean(*by_op[o].key) for o in p)
        for p in pipeline.paths
    )
    stats = [catalog[c.key] for c in plan.choices]
    busy: dict[PipelineTier, float] = {}
    for c, s in zip(plan.choices, stats, strict=True):
        busy[c.tier] = busy.get(c.tier, 0.0) + s.busy_s
    return Scored(plan, latency, math.prod(s.accuracy for s in stats), sum(s.cost_usd for s in stats),
                  tuple(sorted(busy.items())))  # fmt: skip


def meets(scored: Scored, pipeline: Pipeline, slo: SLO, catalog: Catalog, tiers: Tiers, profiler: Profiler) -> bool:
    """The SLO, with latency decided by the profiler (incrementally, per path)."""
    if scored.accuracy < slo.min_accuracy or (slo.max_cost_usd is not None and scored.cost_usd > slo.max_cost_usd):
        return False
    by_op = {c.op: c for c in scored.plan.choices}
    return all(
        profiler.decide([by_op[o].key for o in p], _transfer_s(pipeline, by_op, catalog, tiers, p), slo.latency_s)
        for p in pipeline.paths
    )


def options(pipeline: Pipeline, catalog: Catalog, profiler: Profiler,
            tiers_allowed: frozenset[PipelineTier] | None = None) -> dict[str, list[Choice]]:  # fmt: skip
    """Each operator's non-dominated choices (per tier), cheapest first."""
    out: dict[str, list[Choice]] = {}
    for op in pipeline.operators:
        every = [
            Choice(op.name, cfg, t)
            for cfg in op.configs
            for t in op.tiers
            if (cfg.key, t) in catalog and (tiers_allowed is None or t in tiers_allowed)
        ]

        def vec(c: Choice) -> tuple[float, float, float, float]:
            s = catalog[c.key]
            return (profiler.mean(*c.key), -s.accuracy, s.cost_usd, s.busy_s)

        kept = [c for c in every if not any(o.tier == c.tier and o != c and _dominates(vec(o), vec(c)) for o in every)]
        out[op.name] = sorted(kept, key=lambda c: (catalog[c.key].cost_usd, vec(c)))
    return out


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def _beats(a: Scored, b: Scored) -> bool:
    """``a`` is as cheap as ``b`` and loads no tier more: ``b`` is never worth selecting over it."""
    tiers = {t for t, _ in a.busy_s} | {t for t, _ in b.busy_s}
    return a.cost_usd <= b.cost_usd and all(a.load(t) <= b.load(t) for t in tiers)


def impossible(pipeline: Pipeline, slo: SLO, catalog: Catalog, tiers: Tiers, profiler: Profiler) -> str | None:
    """Why no plan can meet ``slo`` (the field, and the best any plan reaches), or None: each bound is
    the best option of every operator taken separately, transfers left out."""
    best_acc = math.prod(max((catalog[(c.key, t)].accuracy for c in op.configs for t in op.tiers
                              if (c.key, t) in catalog), default=0.0) for op in pipeline.operators)  # fmt: skip
    if best_acc < slo.min_accuracy:
        return f"min_accuracy: {slo.min_accuracy} is above the best plan's {best_acc:.3f}"
    cheapest = sum(min((catalog[(c.key, t)].cost_usd for c in op.configs for t in op.tiers
                        if (c.key, t) in catalog), default=math.inf) for op in pipeline.operators)  # fmt: skip
    if slo.max_cost_usd is not None and cheapest > slo.max_cost_usd:
        return f"max_cost_usd: {slo.max_cost_usd} is below the cheapest plan's {cheapest:.3g}"
    fastest = {op.name: min((profiler.mean(c.key, t) for c in op.configs for t in op.tiers if (c.key, t) in catalog),
                            default=math.inf) for op in pipeline.operators}  # fmt: skip
    floor = max(sum(fastest[o] for o in p) for p in pipeline.paths)
    if floor > slo.latency_s:
        return f"latency_s: {slo.latency_s} is below the fastest plan's {floor:.3g} s (before any transfer)"
    return None


@dataclass
class Search:
    """Branch and bound for one query; ``steps`` counts expanded nodes."""

    pipeline: Pipeline
    slo: SLO
    catalog: Catalog
    tiers: Tiers
    profiler: Profiler
    opts: Mapping[str, list[Choice]]
    k: int | None = DEFAULT_K
    steps: int = 0
    found: list[Scored] = field(default_factory=list)  # the feasible plans none beats on cost and loads

    def offer(self, scored: Scored) -> None:
        if any(o.plan == scored.plan or _beats(o, scored) for o in self.found):
            return
        self.found = [o for o in self.found if not _beats(scored, o)] + [scored]

    def _beaten(self, cost_floor: float, load: Mapping[PipelineTier, float]) -> bool:
        """Some plan found is no dearer than ``cost_floor`` and loads no tier more than ``load``: it
        beats every completion of a partial plan with these lower bounds."""
        return any(
            o.cost_usd <= cost_floor and all(busy <= load.get(t, 0.0) for t, busy in o.busy_s) for o in self.found
        )

    def best(self) -> list[Scored]:
        """At most ``k`` of the plans found: the cheapest, then for each tier the one loading it
        least, then the next cheapest; cheapest first."""
        by_cost = sorted(self.found, key=lambda o: (o.cost_usd, o.busy_s))
        picked = by_cost[:1]
        for tier in sorted({t for o in by_cost for t, _ in o.busy_s}):
            light = min(by_cost, key=lambda o: (o.load(tier), o.cost_usd))
            if light not in picked:
                picked.append(light)
        picked += [o for o in by_cost if o not in picked]
        return sorted(picked[: self.k or len(picked)], key=lambda o: (o.cost_usd, o.busy_s))

    def run(self) -> list[Scored]:
        order = self.pipeline.order
        acc_best = [max((self.catalog[c.key].accuracy for c in self.opts[o]), default=0.0) for o in order]
        cost_min = [min((self.catalog[c.key].cost_usd for c in self.opts[o]), default=math.inf) for o in order]
        lat_min = {o: min((self._optimistic(c) for c in self.opts[o]), default=math.inf) for o in order}
        acc_rest = [math.prod(acc_best[i:]) for i in range(len(order) + 1)]
        cost_rest = [sum(cost_min[i:]) for i in range(len(order) + 1)]
        cap = self.slo.max_cost_usd if self.slo.max_cost_usd is not None else math.inf

        def latency_bound(chosen: dict[str, Choice]) -> float:
            return max(sum(self._optimistic(chosen[o]) if o in chosen else lat_min[o] for o in p)
                       for p in self.pipeline.paths)  # fmt: skip

        def expand(i: int, chosen: dict[str, Choice], acc: float, cost: float, load: dict[PipelineTier, float]) -> None:
            self.steps += 1
            if acc * acc_rest[i] < self.slo.min_accuracy:
                return
            if cost + cost_rest[i] > cap or self._beaten(cost + cost_rest[i], load):
                return
            if latency_bound(chosen) > self.slo.latency_s:
                return
            if i == len(order):
                plan = PipelinePlan(self.pipeline.name, tuple(chosen[o] for o in order))
                scored = score(plan, self.pipeline, self.catalog, self.tiers, self.profiler)
                if meets(scored, self.pipeline, self.slo, self.catalog, self.tiers, self.profiler):
                    self.offer(scored)
                return
            for c in self.opts[order[i]]:
                s = self.catalog[c.key]
                more = {**load, c.tier: load.get(c.tier, 0.0) + s.busy_s}
                expand(i + 1, {**chosen, order[i]: c}, acc * s.accuracy, cost + s.cost_usd, more)

        expand(0, {}, 1.0, 0.0, {})
        return self.best()

    def _optimistic(self, c: Choice) -> float:
        mean, half = self.profiler.estimate(*c.key)
        return max(0.0, mean - half) if math.isfinite(half) else 0.0


@dataclass
class Planner:
    """Circinus's per-query planning with plan reuse across queries; one per catalog and profiler."""

    catalog: Catalog
    tiers: Tiers
    profiler: Profiler
    k: int | None = DEFAULT_K
    tiers_allowed: frozenset[PipelineTier] | None = None
    reuse: bool = True
    steps: int = 0
    _opts: dict[str, dict[str, list[Choice]]] = field(default_factory=dict)
    _done: dict[tuple[str, SLO], list[Scored]] = field(default_factory=dict)

    def plans(self, pipeline: Pipeline, slo: SLO) -> list[Scored]:
        """Up to ``k`` plans meeting ``slo`` (:meth:`Search.best`), cheapest first."""
        if self.reuse and (pipeline.name, slo) in self._done:
            return self._done[(pipeline.name, slo)]
        if pipeline.name not in self._opts:
            self._opts[pipeline.name] = options(pipeline, self.catalog, self.profiler, self.tiers_allowed)
        search = Search(pipeline, slo, self.catalog, self.tiers, self.profiler, self._opts[pipeline.name], self.k)
        if self.reuse:
            for (name, other), found in self._done.items():
                if name == pipeline.name and other != slo:
                    for s in found:
                        if meets(s, pipeline, slo, self.catalog, self.tiers, self.profiler):
                            search.offer(s)
        out = search.run()
        self.steps += search.steps
        self._done[(pipeline.name, slo)] = out
        return out
