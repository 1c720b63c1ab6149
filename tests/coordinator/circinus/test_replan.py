"""Circinus at run time: a tier that fails is planned around, and a query whose SLO attainment drops
is re-planned on the operator times actually observed."""

from __future__ import annotations

from coordinator.circinus.profiles import Profiler
from coordinator.circinus.replan import Replanner
from coordinator.circinus.solve import solve
from tests.coordinator.circinus.test_planner import TIERS, catalog, exact, workload


def test_a_failed_tier_is_planned_around() -> None:
    w = workload(2, [(0.6, 0.5, 1.0), (0.6, 0.5, 1.0), (0.3, 0.5, 2.0)])
    cat, base = catalog(w, 11)
    chosen = solve(w, cat, TIERS, exact(base)).selection.chosen
    used = {t for s in chosen.values() for t, _ in s.busy_s}
    tier = sorted(used)[0]
    r = Replanner(w, cat, TIERS, exact(base))
    assert r.due(chosen) is None
    r.failed(tier)
    assert f"tier {tier} down" in (r.due(chosen) or "")
    after = r.replan().selection
    assert all(t != tier for s in after.chosen.values() for t, _ in s.busy_s)
    assert r.due(after.chosen) is None and r.replans == 1


def test_a_tier_that_is_down_is_never_profiled_again() -> None:
    """Re-planning runs while the tier is gone: a profiling run there would fail."""
    w = workload(2, [(0.6, 0.5, 1.0), (0.3, 0.5, 2.0)])
    cat, base = catalog(w, 5)
    asked: list[str] = []

    def sampler(key: str, tier: str) -> float:
        asked.append(tier)
        return base[(key, tier)]

    r = Replanner(w, cat, TIERS, Profiler(sampler, min_samples=50))  # far more than the first plan takes
    tier = sorted({t for _, t in cat})[0]
    r.failed(tier)
    asked.clear()
    after = r.replan().selection
    assert tier not in asked and asked
    assert all(t != tier for s in after.chosen.values() for t, _ in s.busy_s)


def test_a_query_missing_its_slo_is_replanned_on_observed_times() -> None:
    w = workload(1, [(0.1, 0.5, 1.0)])
    cat, base = catalog(w, 3)
    r = Replanner(w, cat, TIERS, exact(base), window=5)
    first = solve(w, cat, TIERS, r.profiler).selection.chosen["q0"]
    (choice,) = first.plan.choices
    for _ in range(5):  # its tier turned out 10x slower than profiled
        r.observe("q0", False, {choice.key: 10 * base[choice.key]})
    assert r.attainment("q0") == 0.0
    assert "q0 met its SLO in 0 of its last 5" in (r.due({"q0": first}) or "")
    again = r.replan().selection.chosen.get("q0")
    assert again is None or again.plan != first.plan
    assert r.attainment("q0") is None  # counting starts over
