"""tLoRA's online scheduler (arXiv 2602.07263): which jobs train together, on which worker.

Pure, typed and synchronous: it is told of arrivals and departures (with the time, it reads no
clock) and answers a :class:`Placement`; the simulator (:mod:`cloud.tlora.simulator`) and the
live runtime (:mod:`cloud.tlora.runtime`) drive the same object.

Mechanisms, as the paper states them, and what we chose where it is silent:

- **Queue by urgency.**  A waiting job's urgency is ``waited / (alone * slowdown_bound)``: the
  time it has waited over the longest run it accepts (its predicted duration alone,
  ``total_steps * alone step time``, stretched by its slowdown bound).  A short job with a tight
  bound becomes urgent after a short wait; a long, tolerant one can wait longer.  Ties go to the
  earlier arrival.
- **Group by residual capacity.**  Each worker holds one group and has a capacity in tokens per
  step (its memory for activations); a group's load is its members' ``batch * width``.  A job
  goes to the feasible group that leaves the least residual capacity (best fit); an idle worker
  is a candidate with its whole capacity, so jobs pack into existing groups before they spread.
- **Merge rule.**  A job joins a non-empty group only if the group's predicted throughput
  (samples/s, :class:`cloud.tlora.cost.StepCost`) rises and no member, the newcomer included, is
  predicted slower than its ``slowdown_bound`` times its speed alone.
- **Regroup on arrivals and departures.**  Every event re-runs placement of the queue in urgency
  order.  After a departure the smallest groups are also dissolved into the others when every one
  of their members passes the merge rule there (consolidation frees a worker for queued jobs);
  running jobs are otherwise not moved (a move costs a checkpoint and a restore).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cloud.tlora.cost import JobShape, StepCost


@dataclass(frozen=True)
class Worker:
    index: int
    capacity_tokens: int  # padded tokens of one step it has memory for


@dataclass(frozen=True)
class Group:
    worker: int
    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class Placement:
    """The decision: each busy worker's group, and the jobs still waiting (most urgent first)."""

    groups: tuple[Group, ...]
    queued: tuple[str, ...]

    def group_of(self, job_id: str) -> Group | None:
        return next((g for g in self.groups if job_id in g.job_ids), None)


class Scheduler(Protocol):
    """What the simulator and the runtime drive (tLoRA's policy and the baselines)."""

    name: str
    workers: tuple[Worker, ...]

    def arrive(self, job: JobShape, now: float) -> Placement: ...

    def depart(self, job_id: str, now: float) -> Placement: ...

    def placement(self) -> Placement: ...


class Book:
    """The bookkeeping every scheduler shares: the jobs it knows, when they arrived, the groups on
    workers and the queue.  Subclasses decide in :meth:`_place`."""

    name = "book"

    def __init__(self, cost: StepCost, workers: Sequence[Worker]) -> None:
        if not workers:
            raise ValueError("a scheduler needs at least one worker")
        self.cost = cost
        self.workers = tuple(workers)
        self.jobs: dict[str, JobShape] = {}
        self.arrived: dict[str, float] = {}
        self.groups: dict[int, list[str]] = {w.index: [] for w in self.workers}
        self.queue: list[str] = []

    def arrive(self, job: JobShape, now: float) -> Placement:
        if job.job_id in self.jobs:
            raise ValueError(f"job {job.job_id!r} is already scheduled")
        self._check(job)
        self.jobs[job.job_id] = job
        self.arrived[job.job_id] = now
        self.queue.append(job.job_id)
        self._place(now, departed=False)
        return self.placement()

    def depart(self, job_id: str, now: float) -> Placement:
        """``job_id`` finished, failed or was cancelled (running or still queued)."""
        if job_id not in self.jobs:
            raise KeyError(f"no job {job_id!r} is scheduled")
        del self.jobs[job_id], self.arrived[job_id]
        if job_id in self.queue:
            self.queue.remove(job_id)
        for members in self.groups.values():
            if job_id in members:
                members.remove(job_id)
        self._place(now, departed=True)
        return self.placement()

    def placement(self) -> Placement:
        groups = tuple(Group(w, tuple(m)) for w, m in sorted(self.groups.items()) if m)
        return Placement(groups, tuple(self.queue))

    def members(self, worker: int) -> list[JobShape]:
        return [self.jobs[j] for j in self.groups[worker]]

    def load(self, worker: int) -> int:
        return sum(j.tokens_per_step for j in self.members(worker))

    def capacity(self, worker: int) -> int:
        return next(w.capacity_tokens for w in self.workers if w.index == worker)

    def _check(self, job: JobShape) -> None:
        biggest = max(w.capacity_tokens for w in self.workers)
        if job.tokens_per_step > biggest:
            raise ValueError(
                f"job {job.job_id!r} needs {job.tokens_per_step} tokens per step; the largest worker holds {biggest}"
            )

    def _place(self, now: float, departed: bool) -> None:
        raise NotImplementedError


class TloraScheduler(Book):
    """tLoRA's policy (see the module docstring)."""

    name = "tlora"

    def urgency(self, job_id: str, now: float) -> float:
        job = self.jobs[job_id]
        patience = job.total_steps * self.cost.alone_s(job) * job.slowdown_bound
        return (now - self.arrived[job_id]) / patience

    def admits(self, members: Sequence[JobShape], job: JobShape, capacity: int) -> bool:
        """The merge rule: fits the capacity; into a non-empty group only if its throughput rises
        and every member (``job`` too) stays within its slowdown bound."""
        if sum(m.tokens_per_step for m in members) + job.tokens_per_step > capacity:
            return False
        if not members:
            return True
        merged = [*members, job]
        if self.cost.throughput(merged) <= self.cost.throughput(members):
            return False
        return all(self.cost.slowdown(m, merged) <= m.slowdown_bound for m in merged)

    def best_fit(self, job: JobShape, exclude: int | None = None) -> int | None:
        """The worker whose group admits ``job`` with the least residual capacity left."""
        fits = [
            (self.capacity(w) - self.load(w) - job.tokens_per_step, w)
            for w in self.groups
            if w != exclude and self.admits(self.members(w), job, self.capacity(w))
        ]
        return min(fits)[1] if fits else None

    def _place(self, now: float, departed: bool) -> None:
        if departed:
            self._consolidate()
        self.queue.sort(key=lambda j: (-self.urgency(j, now), self.arrived[j], j))
        for job_id in list(self.queue):
            worker = self.best_fit(self.jobs[job_id])
            if worker is not None:
                self.groups[worker].append(job_id)
                self.queue.remove(job_id)

    def _consolidate(self) -> None:
        """Dissolve the smallest groups into the others where all their members are admitted."""
        for w in sorted((w for w, m in self.groups.items() if m), key=lambda w: (len(self.groups[w]), w)):
            moving = list(self.groups[w])
            self.groups[w] = []
            moved: list[tuple[str, int]] = []
            for job_id in moving:
                target = self.best_fit(self.jobs[job_id], exclude=w)
                if target is None or not self.groups[target]:  # only into groups that exist
                    break
                self.groups[target].append(job_id)
                moved.append((job_id, target))
            else:
                continue
            for job_id, target in moved:  # undo: some member had nowhere to go
                self.groups[target].remove(job_id)
            self.groups[w] = moving


def workers_of(count: int, capacity_tokens: int) -> tuple[Worker, ...]:
    return tuple(Worker(i, capacity_tokens) for i in range(count))
