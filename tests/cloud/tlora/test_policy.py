"""tLoRA's online scheduler and its baselines (pure: no clock, no torch), on hand-set cost models."""

from __future__ import annotations

import pytest

from cloud.tlora.baselines import FifoColocate, SoloFifo, SoloSplit
from cloud.tlora.cost import JobShape, StepCost
from cloud.tlora.policy import TloraScheduler, Worker, workers_of

# a step costs 100 ms however many jobs share it, plus 10 ms per job: sharing pays
SHARING = StepCost(fixed_s=0.1, per_job_s=0.01, per_token_s=0.0, per_lora_token_s=0.0)


def job(name: str, steps: int = 100, bound: float = 1.5, batch: int = 4, width: int = 100, rank: int = 8) -> JobShape:
    return JobShape(name, rank, batch, width, 0.01 * rank, steps, bound)


def test_merges_while_throughput_rises_and_every_bound_holds() -> None:
    s = TloraScheduler(SHARING, workers_of(1, 10_000))
    s.arrive(job("a"), 0.0)
    p = s.arrive(job("b"), 1.0)
    assert p.groups[0].job_ids == ("a", "b")  # 120 ms vs 110 ms alone: slowdown 1.09
    # each member alone steps in 110 ms; with k members 100 + 10k ms: a 1.5 bound admits k <= 6
    for i in range(2, 10):
        p = s.arrive(job(f"j{i}"), 2.0)
    assert len(p.groups[0].job_ids) == 6 and len(p.queued) == 4
    assert all(SHARING.slowdown(m, s.members(0)) <= 1.5 for m in s.members(0))


def test_a_tight_bound_keeps_a_job_out_and_a_second_worker_takes_it() -> None:
    s = TloraScheduler(SHARING, workers_of(2, 10_000))
    s.arrive(job("a"), 0.0)
    p = s.arrive(job("tight", bound=1.05), 0.0)  # 120/110 = 1.09 > 1.05: it cannot share
    assert {g.job_ids for g in p.groups} == {("a",), ("tight",)}
    p = s.arrive(job("c"), 0.0)  # c may join a, not tight (tight's bound would break)
    assert p.group_of("c") == p.group_of("a")


def test_no_merge_when_throughput_does_not_rise() -> None:
    per_job_only = StepCost(0.0, 0.1, 0.0, 0.0)  # two jobs take twice as long: nothing gained
    s = TloraScheduler(per_job_only, workers_of(1, 10_000))
    s.arrive(job("a", bound=10.0), 0.0)
    p = s.arrive(job("b", bound=10.0), 0.0)
    assert p.groups[0].job_ids == ("a",) and p.queued == ("b",)


def test_best_fit_by_residual_capacity() -> None:
    s = TloraScheduler(SHARING, [Worker(0, 2000), Worker(1, 1000)])
    s.arrive(job("big", batch=9), 0.0)  # 900 tokens: best fit is the 1000-token worker
    assert s.placement().group_of("big").worker == 1
    p = s.arrive(job("small", batch=2), 0.0)  # 200 tokens do not fit beside big (100 left): worker 0
    assert p.group_of("small").worker == 0
    with pytest.raises(ValueError, match="largest worker holds 2000"):
        s.arrive(job("huge", batch=30), 0.0)


def test_departure_regroups_and_admits_the_queue() -> None:
    s = TloraScheduler(SHARING, workers_of(2, 500))
    s.arrive(job("a", batch=3), 0.0)  # 300 tokens per step
    s.arrive(job("b", batch=3), 0.0)  # does not fit beside a: worker 1
    s.arrive(job("c", batch=2), 0.0)  # fits beside a (500)
    p = s.arrive(job("d", batch=3), 0.0)  # fits nowhere: queued
    assert p.queued == ("d",) and len(p.groups) == 2
    p = s.depart("a", 5.0)  # c (200) can join b (300): its worker frees up for d
    assert p.group_of("c") == p.group_of("b")
    assert p.group_of("d") is not None and p.group_of("d").job_ids == ("d",)
    assert p.queued == ()


def test_queue_is_ordered_by_urgency() -> None:
    s = TloraScheduler(SHARING, workers_of(1, 400))
    s.arrive(job("running", batch=4), 0.0)  # fills the worker
    s.arrive(job("long", steps=1000, batch=4), 0.0)
    s.arrive(job("short", steps=10, batch=4), 1.0)  # arrived later, but waits longer relative to its size
    assert s.urgency("short", 10.0) > s.urgency("long", 10.0)
    p = s.depart("running", 10.0)
    assert p.groups[0].job_ids == ("short",) and p.queued == ("long",)


def test_solo_fifo_runs_one_job_per_worker_in_arrival_order() -> None:
    s = SoloFifo(SHARING, workers_of(1, 10_000))
    for name in ("a", "b", "c"):
        p = s.arrive(job(name), 0.0)
    assert p.groups[0].job_ids == ("a",) and p.queued == ("b", "c")
    assert s.depart("a", 1.0).groups[0].job_ids == ("b",)


def test_solo_split_starts_every_job_at_once_alone() -> None:
    s = SoloSplit(SHARING, workers_of(1, 10_000))
    for name in ("a", "b", "c"):
        p = s.arrive(job(name), 0.0)
    assert sorted(g.job_ids for g in p.groups) == [("a",), ("b",), ("c",)] and p.queued == ()
    p = s.depart("b", 1.0)
    assert sorted(g.job_ids for g in s.arrive(job("d"), 2.0).groups) == [("a",), ("c",), ("d",)]


def test_fifo_colocation_ignores_capacity_and_bounds() -> None:
    s = FifoColocate(SHARING, workers_of(1, 100))  # 100 tokens hold not even one job of 400
    for i in range(10):
        p = s.arrive(job(f"j{i}", bound=1.0), 0.0)
    assert p.groups[0].job_ids == tuple(f"j{i}" for i in range(10)) and p.queued == ()


def test_unknown_and_duplicate_jobs_are_refused() -> None:
    s = TloraScheduler(SHARING, workers_of(1, 10_000))
    s.arrive(job("a"), 0.0)
    with pytest.raises(ValueError, match="already scheduled"):
        s.arrive(job("a"), 0.0)
    with pytest.raises(KeyError):
        s.depart("nope", 0.0)


def test_the_step_time_model_is_recovered_from_steps_and_ignores_a_stall() -> None:
    from cloud.tlora.cost import StepSample, fit

    truth = StepCost(fixed_s=0.05, per_job_s=0.02, per_token_s=2e-5, per_lora_token_s=1e-4)
    jobs = [job(f"j{i}", batch=2 + i, width=80 + 30 * i, rank=4 * 2**i) for i in range(4)]
    groups = [(0,), (1,), (2,), (3,), (0, 1), (0, 1, 2), (0, 1, 2, 3), (1, 3), (0, 2)]
    samples = [StepSample(tuple(jobs[i] for i in g), truth.step_s([jobs[i] for i in g])) for g in groups]
    samples.append(StepSample((jobs[0],), 50 * truth.alone_s(jobs[0])))  # a shared machine's stall
    cost, r2 = fit(samples)
    # exact data, so the fit is exact up to the solver's float round-off
    for got, want in zip(
        (cost.fixed_s, cost.per_job_s, cost.per_token_s, cost.per_lora_token_s),
        (truth.fixed_s, truth.per_job_s, truth.per_token_s, truth.per_lora_token_s),
        strict=True,
    ):
        assert got == pytest.approx(want, rel=1e-6)
    assert r2 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 4"):
        fit(samples[:3])
