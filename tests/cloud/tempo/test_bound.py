"""The oracle is an upper bound for real: its work accounting, its exact solution, and every policy below it."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import linprog

from cloud.engine.scheduler import FCFS
from cloud.tempo.bound import Job, gain_bound, min_work_s, relaxed_optimum
from cloud.tempo.simulator import EngineShape, simulate
from cloud.tempo.step_time import StepTime
from cloud.tempo.workload import Call
from edgeweave.wire.slo import DeadlineSLO
from tests.cloud.tempo.test_policy import SHAPE, STEP, every_policy, workload


def test_min_work_is_what_a_request_alone_costs_when_the_fixed_cost_is_zero() -> None:
    # alone, a request pays per_seq once an iteration; with base = 0 that is the bound's charge exactly
    step = replace(STEP, base_s=0.0)
    for prompt, output in [(20, 1), (20, 30), (200, 4), (250, 60)]:
        call = Call("x", 0.0, prompt, output, DeadlineSLO(type="deadline", deadline_s=100.0))
        alone = simulate([call], FCFS(), SHAPE, step).end_s
        # the same float terms summed in another order: equal to 1e-12 relative on any IEEE-754 machine
        assert abs(min_work_s(prompt, output, step, SHAPE) - alone) <= 1e-12 * alone
    # a prompt over the token budget is prefilled in chunks; the bound charges the later chunks'
    # cached keys nothing (how a prompt is chunked is the scheduler's choice), so it stays below
    long = Call("y", 0.0, 700, 5, DeadlineSLO(type="deadline", deadline_s=100.0))
    assert min_work_s(700, 5, step, SHAPE) < simulate([long], FCFS(), SHAPE, step).end_s


def lp_optimum(js: list[Job]) -> float:
    """The same relaxation as a linear program over the elementary intervals between window ends."""
    points = sorted({t for j in js for t in (j.release_s, j.due_s)})
    slots = list(zip(points, points[1:], strict=False))
    cols = [(i, k) for i, j in enumerate(js) for k, (a, b) in enumerate(slots) if j.release_s <= a and b <= j.due_s]
    a_ub = np.zeros((len(js) + len(slots), len(cols)))
    for c, (i, k) in enumerate(cols):
        a_ub[i, c] = a_ub[len(js) + k, c] = 1.0
    caps = [j.work_s for j in js] + [b - a for a, b in slots]
    res = linprog([-js[i].gain / js[i].work_s for i, _ in cols], A_ub=a_ub, b_ub=caps, method="highs")
    assert res.status == 0
    return -res.fun


def test_the_greedy_rule_solves_the_relaxation_exactly() -> None:
    rng = random.Random(0)
    for _ in range(15):
        js = []
        for _ in range(rng.randrange(2, 12)):
            r = rng.uniform(0, 5)
            js.append(Job(r, r + rng.uniform(0.2, 4), rng.uniform(0.1, 2.0), rng.randrange(1, 50)))
        # HiGHS's optimality tolerance is 1e-7 relative; the greedy's sums are exact to ~1e-12
        assert abs(relaxed_optimum(js) - lp_optimum(js)) <= 1e-6 * max(1.0, lp_optimum(js))


def no_policy_beats_the_bound(seeds: tuple[int, ...], n: int) -> None:
    for seed in seeds:
        for squeeze in (1, 4):  # as generated, and four times the arrival rate (overload)
            calls = [replace(c, arrival_s=c.arrival_s / squeeze) for c in workload(n, seed)]
            bound = gain_bound(calls, STEP, SHAPE)
            assert bound <= sum(c.output_tokens for c in calls)
            for policy in every_policy(calls):
                gain = sum(simulate(calls, policy, SHAPE, STEP).ledger.gain.values())
                assert gain <= bound + 1e-6, (policy.name, seed, squeeze)


def test_no_policy_beats_the_bound_on_a_small_instance() -> None:
    no_policy_beats_the_bound((3,), 24)


@pytest.mark.slow
def test_no_policy_beats_the_bound_on_more_instances() -> None:
    no_policy_beats_the_bound((4, 5, 6), 60)


def test_a_bound_tight_on_an_instance_one_schedule_solves() -> None:
    # two deadline requests that only fit one after the other: the bound is both gains, and FCFS gets them
    step = StepTime(0.0, 1e-3, 0.0, 0.0)  # 1 ms a token, nothing else
    shape = EngineShape(max_num_seqs=1, max_batched_tokens=256, num_blocks=64, block_size=16)
    calls = [
        Call("a", 0.0, 10, 10, DeadlineSLO(type="deadline", deadline_s=0.0195)),  # 19 tokens of work
        Call("b", 0.0, 10, 10, DeadlineSLO(type="deadline", deadline_s=0.039)),
    ]
    assert gain_bound(calls, step, shape) == sum(simulate(calls, FCFS(), shape, step).ledger.gain.values()) == 20
    late = [calls[0], replace(calls[1], slo=DeadlineSLO(type="deadline", deadline_s=0.030))]
    assert 10 <= gain_bound(late, step, shape) < 20  # b cannot fit after a: at most a fraction of it
