"""A discrete-event simulator of tLoRA's cluster (arXiv 2602.07263): the same scheduler object
the live runtime drives, over a job trace, on the fitted step-time model.

Events are arrivals and job completions.  Between two events every group advances at its
predicted step rate (:class:`cloud.tlora.cost.StepCost`: one optimizer step of each member per
group step); when the scheduler runs more groups than the machine has workers (the per-job
baseline with the cores split, :class:`cloud.tlora.baselines.SoloSplit`) they share the workers
evenly (processor sharing, which ignores that a job on fewer threads runs at better parallel
efficiency).  A job's move between groups is free here (the runtime pays a checkpoint and a
restore).  Reports training throughput (samples/s over the makespan), job completion time (mean,
p95; arrival to finish, queueing included), the workers' utilisation and the worst slowdown (a
job's time in training over its predicted time alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud.tlora.cost import JobShape, StepCost
from cloud.tlora.policy import Placement, Scheduler

EPS_STEPS = 1e-9  # a job with fewer steps left than this has finished (float residue of the fluid model)


@dataclass(frozen=True)
class Arrival:
    t: float  # seconds from the start of the run
    job: JobShape


@dataclass(frozen=True)
class SimResult:
    policy: str
    jct_s: dict[str, float]
    makespan_s: float
    samples: float
    utilisation: float  # busy worker-seconds over workers x makespan
    max_slowdown: float

    @property
    def throughput(self) -> float:
        return self.samples / self.makespan_s if self.makespan_s > 0 else 0.0

    @property
    def jct_mean_s(self) -> float:
        return float(np.mean(list(self.jct_s.values())))

    @property
    def jct_p95_s(self) -> float:
        return float(np.percentile(list(self.jct_s.values()), 95))


def simulate(arrivals: Sequence[Arrival], scheduler: Scheduler, cost: StepCost, workers: int = 1) -> SimResult:
    """Run ``scheduler`` over ``arrivals`` (any order) on ``workers`` executors."""
    if not arrivals:
        raise ValueError("simulate needs at least one arrival")
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    pending = sorted(arrivals, key=lambda a: (a.t, a.job.job_id))
    shapes = {a.job.job_id: a.job for a in pending}
    arrived: dict[str, float] = {}
    started: dict[str, float] = {}
    left = {j: float(s.total_steps) for j, s in shapes.items()}
    jct: dict[str, float] = {}
    slowdown: dict[str, float] = {}
    start = t = pending[0].t
    samples = busy = 0.0
    placement = Placement((), ())
    while pending or len(jct) < len(shapes):
        groups = placement.groups
        share = max(1.0, len(groups) / workers)
        step_s = {g.worker: cost.step_s([shapes[j] for j in g.job_ids]) * share for g in groups}
        finish_in = min((left[j] * step_s[g.worker] for g in groups for j in g.job_ids), default=math.inf)
        arrive_in = pending[0].t - t if pending else math.inf
        dt = min(finish_in, arrive_in)
        if math.isinf(dt):
            raise RuntimeError(f"{scheduler.name}: jobs {placement.queued} wait with nothing running or arriving")
        for g in groups:
            for j in g.job_ids:
                steps = dt / step_s[g.worker]
                left[j] -= steps
                samples += steps * shapes[j].batch_size
        busy += dt * min(len(groups), workers)
        t += dt
        for g in groups:
            for j in g.job_ids:
                if left[j] <= EPS_STEPS and j not in jct:
                    jct[j] = t - arrived[j]
                    slowdown[j] = (t - started[j]) / (shapes[j].total_steps * cost.alone_s(shapes[j]))
                    placement = scheduler.depart(j, t)
        while pending and pending[0].t <= t:
            a = pending.pop(0)
            arrived[a.job.job_id] = a.t
            placement = scheduler.arrive(a.job, a.t)
        for g in placement.groups:
            for j in g.job_ids:
                started.setdefault(j, t)
    makespan = t - start
    return SimResult(
        scheduler.name,
        jct,
        makespan,
        samples,
        busy / (workers * makespan) if makespan > 0 else 0.0,
        max(slowdown.values()),
    )
