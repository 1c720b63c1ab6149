"""Dora's contention-aware schedule: hand-checked orderings and the bounds every schedule obeys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from coordinator.dora.network import MEDIUM, rescore, simulate
from coordinator.dora.partitioner import PartitionPlan, Pipeline, PlacedStage, candidates, estimate
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, Workload
from tests.coordinator.dora.test_partitioner import NET, problems

MODEL = ModelProfile("m", (250_000, 1), (10, 10))  # 0.5 s to cross a 1 MB/s access point twice
SLOW_AP = Network(shared_bytes_s=1e6, latency_s=0.0)
INFER = Workload(training=False, batch=2)


def dev(name: str, first: float, second: float) -> DeviceProfile:
    return DeviceProfile(name, 10**9, (first, second), (2 * first, 2 * second), 5.0, 1.0, 1e9)


DEVICES = {d.name: d for d in (dev("a1", 0.1, 0.1), dev("a2", 1.0, 1.0), dev("b1", 0.1, 0.1), dev("b2", 0.01, 0.01))}
PLAN = PartitionPlan(
    (
        Pipeline((PlacedStage("b1", 0, 1), PlacedStage("b2", 1, 2)), 1),  # listed first: first come, first served
        Pipeline((PlacedStage("a1", 0, 1), PlacedStage("a2", 1, 2)), 1),  # a2's long stage waits behind its transfer
    ),
    micro_batches=1,
)


def test_the_critical_transfer_goes_first_on_a_shared_access_point() -> None:
    fifo = simulate(PLAN, MODEL, DEVICES, SLOW_AP, INFER, "fifo")
    # b's transfer 0.1-0.6, then a's 0.6-1.1, a2 computes 1.1-2.1
    assert fifo.makespan_s == pytest.approx(2.1)
    critical = simulate(PLAN, MODEL, DEVICES, SLOW_AP, INFER, "critical")
    # a's transfer first (1.5 s of work behind it): a2 1.6 s; b's 0.6-1.1, b2 done at 1.11
    assert critical.makespan_s == pytest.approx(1.6)
    # the medium: the two transfers, and each pipeline's 1-byte output back
    assert critical.busy_s[MEDIUM] == pytest.approx(1.0 + 2e-6) and critical.busy_s["a2"] == pytest.approx(1.0)


def test_one_micro_batch_through_one_pipeline_matches_the_closed_form() -> None:
    plan = PartitionPlan((Pipeline((PlacedStage("a1", 0, 1), PlacedStage("a2", 1, 2)), 2),), micro_batches=1)
    net = Network(1e6, latency_s=0.05)
    est = estimate(plan, MODEL, DEVICES, net, INFER)
    sched = simulate(plan, MODEL, DEVICES, net, INFER, "critical")
    # the input in (one leg), a1, the activations relayed by the driver (two legs, 2 x 0.5 MB over
    # the medium), a2, the 2-byte output back (one leg)
    assert sched.makespan_s == pytest.approx(est.latency_s) == pytest.approx(0.05 + 0.2 + 1.0 + 0.1 + 2.0 + 0.05 + 2e-6)
    again = rescore(plan, est, MODEL, DEVICES, net, INFER)
    assert again.latency_s == pytest.approx(est.latency_s) and again.energy_j == pytest.approx(est.energy_j)


@settings(max_examples=40, deadline=None)
@given(problems())
def test_no_schedule_beats_its_busiest_resource_and_every_job_runs(
    problem: tuple[ModelProfile, list[DeviceProfile], Workload],
) -> None:
    model, devices, work = problem
    by_name = {d.name: d for d in devices}
    for plan in list(candidates(model, devices, work))[:6]:
        for order in ("fifo", "critical"):
            sched = simulate(plan, model, by_name, NET, work, order)
            assert sched.makespan_s >= max(sched.busy_s.values()) - 1e-12
            for pipe in plan.pipelines:  # every stage ran all its samples
                for s in pipe.stages:
                    per_sample = sum(by_name[s.device].forward_s[s.start : s.end])
                    if work.training:
                        per_sample += sum(by_name[s.device].backward_s[s.start : s.end])
                    assert sched.busy_s[s.device] == pytest.approx(pipe.samples * per_sample)
