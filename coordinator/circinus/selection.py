"""Circinus's global selection (pure): one plan (or none) per query so that as much SLO goodput as
possible fits the tiers' capacities, at the least cost among such choices.

Queries on one side, candidate plans on the other: an assignment picks at
most one plan per query, and every tier's capacity bounds the load of the
plans picked (rate x compute-seconds per invocation).  With capacities this
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
from coordinator.circinus.spec import Query, Tier

GOODPUT_GAP = 1e-4  # relative; capped below half the smallest rate's share, so goodput is exact
COST_GAP = 1e-2  # relative: the least cost to within 1% (closing it further took HiGHS 30 s at 100 queries)


@dataclass(frozen=True)
class Selection:
    chosen: Mapping[str, Scored]  # query id -> its plan (served queries only)
    goodput: float  # invocations/s of queries served within their SLO
    cost_usd_s: float  # dollars per second of the served queries
    load: Mapping[Tier, float]  # compute-seconds per second used on each tier


def summarize(queries: Sequence[Query], chosen: Mapping[str, Scored]) -> Selection:
    rate = {q.id: q.rate for q in queries}
    load: dict[Tier, float] = {}
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
    capacity: Mapping[Tier, float],
    time_limit_s: float = 30.0,
) -> Selection:
    """The best assignment of ``candidates`` (query id -> plans meeting its SLO) within ``capacity``."""
    cols = [(q, s) for q in queries for s in candidates.get(q.id, ())]
    if not cols:
        return summarize(queries, {})
    tiers = sorted(set(capacity) | {t for _, s in cols for t, _ in s.busy_s})  # a tier not offered: none
    n = len(cols)
    rates = np.array([q.rate for q, _ in cols])
    costs = np.array([q.rate * s.cost_usd for q, s in cols])
    index = {q.id: i for i, q in enumerate(queries)}
    one = np.zeros((len(queries), n))
    for j, (q, _) in enumerate(cols):
        one[index[q.id], j] = 1.0
    use = np.array([[q.rate * s.load(t) for q, s in cols] for t in tiers])
    constraints = [LinearConstraint(one, 0.0, 1.0), LinearConstraint(use, 0.0, [capacity.get(t, 0.0) for t in tiers])]
    kw = {"integrality": np.ones(n), "bounds": Bounds(0, 1)}
    exact_goodput = min(GOODPUT_GAP, 0.5 * float(rates.min()) / float(rates.sum()))
    most = milp(-rates, constraints=constraints, options={"time_limit": time_limit_s, "mip_rel_gap": exact_goodput},
                **kw)  # fmt: skip  # the most goodput
    if most.x is None:
        return summarize(queries, {})
    floor = float(rates @ np.round(most.x)) - 1e-9 * max(1.0, float(rates.sum()))
    # then the least cost; scaled to order one, since HiGHS stops within an absolute gap of 1e-6
    scaled = costs / costs.max() if costs.max() > 0 else costs
    result = milp(scaled, constraints=[*constraints, LinearConstraint(rates, floor, np.inf)],
                  options={"time_limit": time_limit_s, "mip_rel_gap": COST_GAP}, **kw)  # fmt: skip
    if result.x is None:
        return summarize(queries, {})
    chosen = {q.id: s for (q, s), x in zip(cols, result.x, strict=True) if x > 0.5}
    return summarize(queries, _cheapened(queries, chosen, candidates, capacity))


def _cheapened(
    queries: Sequence[Query],
    chosen: Mapping[str, Scored],
    candidates: Mapping[str, Sequence[Scored]],
    capacity: Mapping[Tier, float],
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
