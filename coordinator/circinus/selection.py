"""Circinus's global selection (pure): one plan (or none) per query so that as much SLO goodput as
possible fits the tiers' capacities, at the least cost among such choices.

Queries on one side, candidate plans on the other: an assignment picks at
most one plan per query, and every tier's capacity bounds the load of the
plans picked (rate x compute-seconds per invocation).  Queries alike in
rate and candidates form one class whose members the programs count rather
than name.  With capacities this
is a generalized assignment problem rather than a plain bipartite matching,
so it is solved as two 0-1 integer programs by HiGHS
(:func:`scipy.optimize.milp`, branch and cut): the most goodput (the rates
of the queries served; to a gap below half the smallest rate, so exactly),
then the least cost among assignments with that goodput (to within
``COST_GAP``), and last each query swapped to a cheaper plan of its own
where capacity allows.  A query none of whose plans fits is left unserved
(it misses its SLO).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from coordinator.circinus.planner import Scored
from coordinator.circinus.spec import PipelineTier, Query

GOODPUT_GAP = 1e-4  # relative; capped below half the smallest rate's share, so goodput is exact
COST_GAP = 1e-2  # relative: the least cost to within 1% (closing it further took HiGHS 30 s at 100 queries)


@dataclass(frozen=True)
class Selection:
    chosen: Mapping[str, Scored]  # query id -> its plan (served queries only)
    goodput: float  # invocations/s of queries served within their SLO
    cost_usd_s: float  # dollars per second of the served queries
    load: Mapping[PipelineTier, float]  # compute-seconds per second used on each tier


def summarize(queries: Sequence[Query], chosen: Mapping[str, Scored]) -> Selection:
    rate = {q.id: q.rate for q in queries}
    load: dict[PipelineTier, float] = {}
    for qid, s in chosen.items():
        for tier, busy in s.busy_s:
            load[tier] = load.get(tier, 0.0) + rate[qid] * busy
    return Selection(
        dict(chosen),
        sum(rate[q] for q in chosen),
        sum(rate[q] * s.cost_usd for q, s in chosen.items()),
        load,
    )


def select(
    queries: Sequence[Query],
    candidates: Mapping[str, Sequence[Scored]],
    capacity: Mapping[PipelineTier, float],
    time_limit_s: float = 30.0,
) -> Selection:
    """The best assignment of ``candidates`` (query id -> plans meeting its SLO) within ``capacity``.

    Queries with the same rate and the same candidates are interchangeable, so the programs count
    how many of each such class take each plan (integers up to the class's size): the same optimum
    as one 0-1 variable per query and plan, with as many fewer columns as queries repeat."""
    classes: dict[tuple[float, tuple[Scored, ...]], list[Query]] = {}
    for q in queries:
        if candidates.get(q.id):
            classes.setdefault((q.rate, tuple(candidates[q.id])), []).append(q)
    cols = [(rate, len(members), s) for (rate, plans), members in classes.items() for s in plans]
    if not cols:
        return summarize(queries, {})
    tiers = sorted(set(capacity) | {t for *_, s in cols for t, _ in s.busy_s})  # a tier not offered: none
    n = len(cols)
    rates = np.array([rate for rate, _, _ in cols])
    costs = np.array([rate * s.cost_usd for rate, _, s in cols])
    one = np.zeros((len(classes), n))
    j = 0
    for i, (_, plans) in enumerate(classes):
        one[i, j : j + len(plans)] = 1.0
        j += len(plans)
    sizes = [len(members) for members in classes.values()]
    use = np.array([[rate * s.load(t) for rate, _, s in cols] for t in tiers])
    constraints = [LinearConstraint(one, 0.0, sizes), LinearConstraint(use, 0.0, [capacity.get(t, 0.0) for t in tiers])]
    kw = {"integrality": np.ones(n), "bounds": Bounds(0, [size for _, size, _ in cols])}
    offered = sum(rate * len(members) for (rate, _), members in classes.items())
    exact_goodput = min(GOODPUT_GAP, 0.5 * float(rates.min()) / offered)
    most = milp(-rates, constraints=constraints, options={"time_limit": time_limit_s, "mip_rel_gap": exact_goodput},
                **kw)  # fmt: skip  # the most goodput
    if most.x is None:
        return summarize(queries, {})
    floor = float(rates @ np.round(most.x)) - 1e-9 * max(1.0, offered)
    # then the least cost; scaled to order one, since HiGHS stops within an absolute gap of 1e-6
    scaled = costs / costs.max() if costs.max() > 0 else costs
    result = milp(scaled, constraints=[*constraints, LinearConstraint(rates, floor, np.inf)],
                  options={"time_limit": time_limit_s, "mip_rel_gap": COST_GAP}, **kw)  # fmt: skip
    if result.x is None:
        return summarize(queries, {})
    chosen: dict[str, Scored] = {}
    taken = iter(np.round(result.x).astype(int))
    for (_, plans), members in classes.items():
        waiting = iter(members)
        for plan in plans:
            for _ in range(next(taken)):
                chosen[next(waiting).id] = plan
    return summarize(queries, _cheapened(queries, chosen, candidates, capacity))


def _cheapened(
    queries: Sequence[Query],
    chosen: Mapping[str, Scored],
    candidates: Mapping[str, Sequence[Scored]],
    capacity: Mapping[PipelineTier, float],
) -> dict[str, Scored]:
    """Each served query moved, one at a time, to the cheapest of its own plans that still fits:
    the cost program stops within ``COST_GAP``, often on a plan that such a swap improves.  The same
    queries stay served, so goodput is unchanged; cost only falls."""
    rate = {q.id: q.rate for q in queries}
    out = dict(chosen)
    load = dict(summarize(queries, out).load)
    for qid in sorted(out):
        current = out[qid]
        for s in sorted(candidates[qid], key=lambda s: s.cost_usd):
            if s.cost_usd >= current.cost_usd:
                break
            after = dict(load)
            for t, busy in current.busy_s:
                after[t] -= rate[qid] * busy
            for t, busy in s.busy_s:
                after[t] = after.get(t, 0.0) + rate[qid] * busy
            if all(used <= capacity.get(t, 0.0) + 1e-12 for t, used in after.items()):
                out[qid], load = s, after
                break
    return out
