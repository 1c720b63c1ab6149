"""Dora's contention-aware schedule of one batch (pure): devices and the shared access point as
resources, micro-batches and their transfers as jobs, an event-driven simulation of who goes next.

Every device computes one job at a time; the access point carries one
transfer at a time (a transfer holds it for its two crossings, ``2 * bytes /
shared``; its latency follows without holding it).  When several jobs wait for
the same resource, the order decides how much communication overlaps
computation:

- ``fifo``: the job that became ready first;
- ``critical``: the job with the most work still ahead of its micro-batch
  (its remaining stages' compute plus transfers), so the bottleneck stages of
  every pipeline are fed first (longest remaining path first).

Transfers are :func:`coordinator.dora.partitioner.hops` (through the driver:
the input in, activations between stages, the output back).  In training, a
micro-batch's backward pass starts at its last stage once its forward pass
ends there (gradients flow back over the same cuts), and the gradient
all-reduce through the driver closes the step.  The makespan
re-scores a plan (:func:`rescore`) in place of the closed-form estimate.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from coordinator.dora.partitioner import Estimate, Hop, PartitionPlan, allreduce_s, hops
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, Workload

Order = Literal["fifo", "critical"]
MEDIUM = "access-point"


@dataclass(order=True)
class _Job:
    key: tuple[float, ...]
    name: str = field(compare=False)
    resource: str = field(compare=False)
    duration: float = field(compare=False)
    after: float = field(compare=False, default=0.0)  # delay after it ends before its successors may start
    successors: list[_Job] = field(compare=False, default_factory=list)
    waiting_for: int = field(compare=False, default=0)
    remaining: float = field(compare=False, default=0.0)  # work ahead, this job included


@dataclass(frozen=True)
class Schedule:
    makespan_s: float
    busy_s: dict[str, float]  # per device, and the access point


def _chain(jobs: list[_Job]) -> None:
    for a, b in zip(jobs, jobs[1:], strict=False):
        a.successors.append(b)
        b.waiting_for += 1


def _jobs(
    plan: PartitionPlan, model: ModelProfile, devices: Mapping[str, DeviceProfile], net: Network, work: Workload
) -> list[_Job]:
    """Every job of one batch, linked to what must finish first; ``remaining`` filled in."""
    out: list[_Job] = []
    for p, pipe in enumerate(plan.pipelines):
        m = pipe.samples / plan.micro_batches
        forward, backward = hops(model, pipe.stages, work.training)
        for j in range(plan.micro_batches):
            order = [*zip(forward, pipe.stages, strict=False)]  # (hop, stage): the hop leads in
            order += [(h, None) for h in forward[len(pipe.stages) :]]  # the output back
            order += [(s, h) for s, h in zip(reversed(pipe.stages), backward, strict=False)]  # the stage leads
            path: list[_Job] = []
            for k, item in enumerate(x for pair in order for x in pair if x is not None):
                name = f"{p}.{j}.{k}"
                if isinstance(item, Hop):
                    crossing, _ = item.seconds(m, devices, net)
                    path.append(_Job((), name, MEDIUM, crossing, item.legs * net.latency_s))
                else:
                    backward_pass = k >= 2 * len(pipe.stages)
                    per_layer = devices[item.device].backward_s if backward_pass else devices[item.device].forward_s
                    path.append(_Job((), name, item.device, m * sum(per_layer[item.start : item.end])))
            _chain(path)
            ahead = 0.0
            for job in reversed(path):
                ahead += job.duration + job.after
                job.remaining = ahead
            out += path
    volume, after = allreduce_s(model, len(plan.pipelines), net)
    if work.training and volume:
        sync = _Job((), "allreduce", MEDIUM, volume, after)
        sync.remaining = sync.duration + sync.after
        for job in out:
            if not job.successors:
                job.successors.append(sync)
                sync.waiting_for += 1
        out.append(sync)
    return out


def simulate(
    plan: PartitionPlan,
    model: ModelProfile,
    devices: Mapping[str, DeviceProfile],
    net: Network,
    work: Workload,
    order: Order,
) -> Schedule:
    jobs = _jobs(plan, model, devices, net, work)
    queues: dict[str, list[_Job]] = {}
    running: set[str] = set()
    busy: dict[str, float] = {}
    events: list[tuple[float, int, bool, _Job]] = []  # (time, tie, is_end, job)
    seq = 0

    def push(t: float, end: bool, job: _Job) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, end, job))

    for job in jobs:
        if job.waiting_for == 0:
            push(0.0, False, job)
    makespan = 0.0
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, _, end, job = heapq.heappop(events)
            if not end:  # ready: wait for its resource
                seq += 1
                job.key = (now, seq) if order == "fifo" else (-job.remaining, now, seq)
                heapq.heappush(queues.setdefault(job.resource, []), job)
                continue
            running.discard(job.resource)
            makespan = max(makespan, now + job.after)
            for nxt in job.successors:
                nxt.waiting_for -= 1
                if nxt.waiting_for == 0:
                    push(now + job.after, False, nxt)
        for res, q in queues.items():
            if q and res not in running:
                job = heapq.heappop(q)
                running.add(res)
                busy[res] = busy.get(res, 0.0) + job.duration
                push(now + job.duration, True, job)
    return Schedule(makespan, busy)


def rescore(
    plan: PartitionPlan,
    est: Estimate,
    model: ModelProfile,
    devices: Mapping[str, DeviceProfile],
    net: Network,
    work: Workload,
    order: Order = "critical",
) -> Estimate:
    """The estimate with the scheduled makespan as latency (and idle energy over it)."""
    sched = simulate(plan, model, devices, net, work, order)
    idle = sum(devices[d].idle_w for d in set(plan.devices))
    energy = est.energy_j + idle * (sched.makespan_s - est.latency_s)
    throughput = work.batch / sched.makespan_s if work.training else est.throughput
    return replace(est, latency_s=sched.makespan_s, throughput=throughput, energy_j=energy)
