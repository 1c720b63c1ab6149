"""Dora's partitioner: invariants as properties over random device sets, plus hand-checked cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.dora.partitioner import PartitionPlan, Pipeline, PlacedStage, candidates, cut, estimate, stage_memory
from coordinator.dora.planner import partition, score
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, QoE, Workload

NET = Network(shared_bytes_s=10e6, latency_s=0.002)


def device(name: str, per_layer_s: float, layers: int, memory: int = 10**9, busy_w: float = 5.0) -> DeviceProfile:
    return DeviceProfile(name, memory, (per_layer_s,) * layers, (2 * per_layer_s,) * layers, busy_w, 1.0, 20e6)


@st.composite
def problems(draw: st.DrawFn) -> tuple[ModelProfile, list[DeviceProfile], Workload]:
    layers = draw(st.integers(2, 12))
    model = ModelProfile(
        "m",
        tuple(draw(st.lists(st.integers(1_000, 100_000), min_size=layers, max_size=layers))),
        tuple(draw(st.lists(st.integers(10_000, 1_000_000), min_size=layers, max_size=layers))),
    )
    n = draw(st.integers(1, 5))
    devices = [
        DeviceProfile(
            f"d{i}",
            draw(st.integers(500_000, 20_000_000)),
            tuple(draw(st.lists(st.floats(1e-4, 1e-2), min_size=layers, max_size=layers))),
            tuple(draw(st.lists(st.floats(1e-4, 2e-2), min_size=layers, max_size=layers))),
            draw(st.floats(0.5, 20.0)),
            draw(st.floats(0.1, 5.0)),
            draw(st.floats(1e6, 50e6)),
        )
        for i in range(n)
    ]
    return model, devices, Workload(training=draw(st.booleans()), batch=draw(st.integers(1, 16)))


@settings(max_examples=60, deadline=None)
@given(problems())
def test_every_plan_places_each_layer_once_within_memory_and_the_set_is_pareto(
    problem: tuple[ModelProfile, list[DeviceProfile], Workload],
) -> None:
    model, devices, work = problem
    by_name = {d.name: d for d in devices}
    plans = list(candidates(model, devices, work))
    for plan in plans:
        assert len(set(plan.devices)) == len(plan.devices)  # a device serves one stage
        assert sum(p.samples for p in plan.pipelines) == work.batch
        for pipe in plan.pipelines:
            covered = [layer for s in pipe.stages for layer in range(s.start, s.end)]
            assert covered == list(range(model.layers))  # every layer once, in order
            for s in pipe.stages:
                assert s.end > s.start
                need = stage_memory(model, s.start, s.end, pipe.samples, work.training)
                assert need <= by_name[s.device].memory_bytes
    front = partition(model, devices, NET, work, QoE())
    assert len(front) <= len(plans)
    ests = [e for _, e in front]
    assert not any(a.dominates(b) for a in ests for b in ests)
    every = [score(p, model, by_name, NET, work) for p in plans]
    assert all(any(f == e or f.dominates(e) for f in ests) for e in every)  # nothing better was dropped
    bound = min((e.latency_s for e in every), default=None)
    if bound is not None:
        assert all(e.latency_s >= bound for e in ests)
        strict = partition(model, devices, NET, work, QoE(max_latency_s=bound))
        assert strict and all(e.latency_s <= bound for _, e in strict)


def test_cut_balances_the_slowest_stage_and_respects_memory() -> None:
    model = ModelProfile("m", (1000,) * 4, (100,) * 4)
    fast, slow = device("fast", 0.001, 4), device("slow", 0.003, 4)
    # 4 layers on (fast, slow): fast takes 3 (3 ms), slow 1 (3 ms)
    assert cut(model, [fast, slow], 1, False) == (PlacedStage("fast", 0, 3), PlacedStage("slow", 3, 4))
    tight = device("fast", 0.001, 4, memory=250)  # two layers' weights at most
    assert cut(model, [tight, slow], 1, False) == (PlacedStage("fast", 0, 2), PlacedStage("slow", 2, 4))
    assert cut(model, [device("a", 0.001, 4, memory=50), slow], 1, False) is None  # no layer fits on a
    assert cut(model, [fast] * 5, 1, False) is None  # more devices than layers


def test_estimate_of_a_two_stage_pipeline_by_hand() -> None:
    model = ModelProfile("m", (10_000, 10_000), (1000, 1000))
    devs = {"a": device("a", 0.01, 2), "b": device("b", 0.02, 2)}
    plan = PartitionPlan((Pipeline((PlacedStage("a", 0, 1), PlacedStage("b", 1, 2)), 4),), micro_batches=2)
    est = estimate(plan, model, devs, NET, Workload(training=False, batch=4))
    # micro-batch of 2: the input in (no bytes, one leg) 2 ms; a 0.02 s; 20 kB relayed a -> driver -> b:
    # two legs 4 ms + max(4 ms on the AP, 1 ms links) = 8 ms; b 0.04 s; the 20 kB output back: 2 ms +
    # max(2 ms, 1 ms) = 4 ms.  Fill 0.074, then one more round at the bottleneck 0.04
    assert est.latency_s == pytest.approx(0.114)
    assert est.throughput == pytest.approx(4 / 0.08)  # b is busy 0.08 s a batch
    assert est.energy_j == pytest.approx(5.0 * 0.04 + 5.0 * 0.08 + 2 * 1.0 * 0.114)
