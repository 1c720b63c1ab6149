"""Circinus's planner: it matches exhaustive search on small instances, never exceeds a tier's
capacity, reuses plans across queries with the same SLO (and seeds similar ones without changing
their plans), beats per-query greedy where greedy starves a later
query, and its early-stopping profiler decides as full profiling would beyond the stated precision."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.circinus.baselines import exhaustive, greedy, within
from coordinator.circinus.planner import Planner, meets
from coordinator.circinus.profiles import OpStats, Profiler, Tiers
from coordinator.circinus.solve import solve
from coordinator.circinus.spec import SLO, Workload, parse

SPEED = {"device": 4.0, "edge": 2.0, "cloud": 1.0}  # slowdown of each tier
PRICE = {"device": 0.0, "edge": 1e-5, "cloud": 4e-5}  # dollars per compute-second
TIERS = Tiers(
    capacity={"device": 0.5, "edge": 1.0, "cloud": 4.0},
    rtt_s={("device", "edge"): 0.005, ("edge", "cloud"): 0.04, ("device", "cloud"): 0.045},
    bandwidth={("device", "edge"): 12.5e6, ("edge", "cloud"): 6e6, ("device", "cloud"): 5e6},
)


def workload(n_ops: int, queries: list[tuple[float, float, float]]) -> Workload:
    ops = [
        {"name": f"op{i}", "kind": "k", "tiers": ["device", "edge", "cloud"],
         "configs": [{"model": f"m{i}", "resolution": r} for r in (32, 64)]}
        for i in range(n_ops)
    ]  # fmt: skip
    edges = [[f"op{i}", f"op{i + 1}"] for i in range(n_ops - 1)]
    qs = [
        {"id": f"q{j}", "pipeline": "p", "rate": rate, "slo": {"latency_s": lat, "min_accuracy": acc}}
        for j, (lat, acc, rate) in enumerate(queries)
    ]
    return parse({"pipelines": [{"name": "p", "operators": ops, "edges": edges, "input_bytes": 20_000}], "queries": qs})


def catalog(w: Workload, seed: int) -> tuple[dict, dict]:
    """(catalog, true latency per (config, tier)): bigger inputs are slower and more accurate."""
    rng = random.Random(seed)
    cat, base = {}, {}
    for op in w.pipelines[0].operators:
        work = rng.uniform(0.005, 0.03)
        for cfg in op.configs:
            big = cfg.resolution == 64
            for tier in ("device", "edge", "cloud"):
                lat = work * (3.0 if big else 1.0) * SPEED[tier]
                base[(cfg.key, tier)] = lat
                acc = rng.uniform(0.9, 0.99) if big else rng.uniform(0.7, 0.9)
                cat[(cfg.key, tier)] = OpStats(acc, PRICE[tier] * lat, lat, 4_000 if big else 2_000)
    return cat, base


def exact(base: dict) -> Profiler:
    return Profiler(lambda key, tier: base[(key, tier)])


def noisy(base: dict, seed: int, **kw: object) -> Profiler:
    rng = random.Random(seed)
    return Profiler(lambda key, tier: base[(key, tier)] * max(0.5, rng.gauss(1.0, 0.05)), **kw)  # type: ignore[arg-type]


QUERIES = st.lists(
    st.tuples(st.floats(0.05, 0.6), st.floats(0.3, 0.9), st.sampled_from([1.0, 5.0, 20.0])), min_size=1, max_size=6
)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), QUERIES, st.integers(0, 10**6))
def test_matches_exhaustive_search_on_small_instances(n_ops: int, queries: list, seed: int) -> None:
    w = workload(n_ops, queries)
    cat, base = catalog(w, seed)
    best, _ = exhaustive(w, cat, TIERS, exact(base))
    ours = solve(w, cat, TIERS, exact(base), k=1000).selection
    assert ours.goodput == pytest.approx(best.goodput)
    assert ours.cost_usd_s == pytest.approx(best.cost_usd_s, rel=2e-2, abs=1e-12)  # both within COST_GAP


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), QUERIES, st.integers(0, 10**6))
def test_selections_never_exceed_capacity_and_every_chosen_plan_meets_its_slo(n_ops, queries, seed) -> None:
    w = workload(n_ops, queries)
    cat, base = catalog(w, seed)
    for sel in (solve(w, cat, TIERS, noisy(base, seed)).selection, greedy(w, cat, TIERS, noisy(base, seed))[0]):
        assert within(sel, TIERS.capacity)
        for q in w.queries:
            if q.id in sel.chosen:
                assert meets(sel.chosen[q.id], w.pipelines[0], q.slo, cat, TIERS, exact(base)) or (
                    sel.chosen[q.id].latency_s == pytest.approx(q.slo.latency_s, rel=0.1)  # decided within precision
                )


def test_greedy_starves_a_later_query_that_circinus_serves() -> None:
    # q0 (loose) would take the cheap device; q1 (tight) then has nowhere fast enough left
    w = workload(1, [(0.5, 0.0, 1.0), (0.09, 0.0, 1.0)])
    op = w.pipelines[0].operators[0]
    small = op.configs[0].key
    cat = {(small, t): OpStats(0.8, PRICE[t] * lat, lat, 100) for t, lat in (("device", 0.08), ("edge", 0.3))}
    tiers = Tiers({"device": 0.1, "edge": 1.0}, {("device", "edge"): 0.005}, {("device", "edge"): 1e9})
    base = {k: v.busy_s for k, v in cat.items()}
    g, _ = greedy(w, cat, tiers, exact(base))
    c = solve(w, cat, tiers, exact(base)).selection
    assert set(g.chosen) == {"q0"} and g.goodput == 1.0
    assert set(c.chosen) == {"q0", "q1"} and c.goodput == 2.0
    assert c.chosen["q1"].plan.choices[0].tier == "device" and c.chosen["q0"].plan.choices[0].tier == "edge"


def test_similar_queries_reuse_plans() -> None:
    w = workload(3, [(0.4, 0.5, 1.0)])
    cat, base = catalog(w, 7)
    pipe = w.pipelines[0]
    planner = Planner(cat, TIERS, exact(base))
    first = planner.plans(pipe, SLO(latency_s=0.4, min_accuracy=0.5))
    steps = planner.steps
    assert planner.plans(pipe, SLO(latency_s=0.4, min_accuracy=0.5)) == first and planner.steps == steps
    similar = planner.plans(pipe, SLO(latency_s=0.35, min_accuracy=0.5))  # seeded with the plans above
    seeded = planner.steps - steps
    fresh = Planner(cat, TIERS, exact(base), reuse=False)
    assert fresh.plans(pipe, SLO(latency_s=0.35, min_accuracy=0.5)) == similar
    assert seeded <= fresh.steps


def test_early_stopping_decides_like_full_profiling_beyond_the_stated_precision() -> None:
    w = workload(3, [(0.4, 0.5, 1.0)])
    cat, base = catalog(w, 3)
    keys = list(base)
    rng = random.Random(0)
    early, full = noisy(base, 1), noisy(base, 2, early_stop=False)
    for _ in range(300):
        parts = rng.sample(keys, 3)
        truth = sum(base[p] for p in parts)
        bound = truth * rng.uniform(0.8, 1.2)
        a, b = early.decide(parts, 0.0, bound), full.decide(parts, 0.0, bound)
        if a != b:  # only where the SLO is within the stated precision of the true latency
            assert abs(truth - bound) <= early.precision * truth, (truth, bound)
    assert early.steps < 0.5 * full.steps, (early.steps, full.steps)
