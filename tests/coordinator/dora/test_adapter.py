"""Dora's runtime adapter: the least-energy mix for a throughput target, and re-planning only when
conditions move (bandwidth, load, battery, membership)."""

from __future__ import annotations

import pytest

from coordinator.dora.adapter import Adapter, Conditions, choose
from coordinator.dora.partitioner import Estimate, PartitionPlan, Pipeline, PlacedStage
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, QoE, Workload


def _plan(name: str) -> PartitionPlan:
    return PartitionPlan((Pipeline((PlacedStage(name, 0, 1),), 10),), 1)


A, B, C = _plan("a"), _plan("b"), _plan("c")
FRONT = [
    (A, Estimate(latency_s=1.0, throughput=10.0, energy_j=10.0)),  # 1.0 J a sample (batch 10)
    (B, Estimate(latency_s=0.3, throughput=30.0, energy_j=20.0)),  # 2.0
    (C, Estimate(latency_s=0.4, throughput=25.0, energy_j=18.0)),  # 1.8
]


def test_time_sharing_two_plans_beats_the_cheapest_single_plan_that_reaches_the_target() -> None:
    mix = choose(FRONT, QoE(min_throughput=20.0), batch=10)
    assert mix is not None
    # C alone: 1.8 J a sample; a third of the time on A and the rest on C: (3.33 * 1.0 + 16.67 * 1.8) / 20
    assert [(p, pytest.approx(x)) for p, _, x in mix.parts] == [(A, 1 / 3), (C, 2 / 3)]
    assert mix.throughput == pytest.approx(20.0) and mix.energy_per_sample == pytest.approx(5 / 3)
    no_c = choose(FRONT, QoE(min_throughput=20.0, max_latency_s=0.35), batch=10)  # C too slow per request
    assert no_c is not None and [p for p, _, _ in no_c.parts] == [B]  # A breaks the bound too
    cheapest = choose(FRONT, QoE(), batch=10)
    assert cheapest is not None and [p for p, _, _ in cheapest.parts] == [A]
    assert choose(FRONT, QoE(min_throughput=40.0), batch=10) is None


LAYERS = 4
MODEL = ModelProfile("m", (20_000,) * LAYERS, (100_000,) * LAYERS)
DEVICES = [
    DeviceProfile(n, 10**8, (t,) * LAYERS, (2 * t,) * LAYERS, w, 1.0, 20e6)
    for n, t, w in (("phone", 0.004, 3.0), ("pi-1", 0.01, 4.0), ("pi-2", 0.01, 4.0), ("tv", 0.006, 8.0))
]
ALL = frozenset(d.name for d in DEVICES)


def test_the_adapter_replans_on_real_changes_only_and_leaves_out_absent_or_flat_devices() -> None:
    adapter = Adapter(MODEL, DEVICES, Network(10e6, 0.002), Workload(False, 8), QoE(max_latency_s=1.0))
    first = adapter.observe(Conditions(10e6, ALL))
    assert first is not None and adapter.replans == 1
    assert adapter.observe(Conditions(9.5e6, ALL, slowdown={"tv": 1.1})) is first  # noise: no churn
    assert adapter.replans == 1
    adapter.observe(Conditions(5e6, ALL))  # bandwidth halved
    assert adapter.replans == 2
    gone = adapter.observe(Conditions(5e6, ALL - {"phone"}))
    assert adapter.replans == 3 and gone is not None
    assert all("phone" not in plan.devices for plan, _, _ in gone.parts)
    flat = adapter.observe(Conditions(5e6, ALL - {"phone"}, battery={"tv": 0.05}))
    assert adapter.replans == 4 and flat is not None
    assert all("tv" not in plan.devices for plan, _, _ in flat.parts)
