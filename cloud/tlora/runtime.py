"""tLoRA's live runtime (arXiv 2602.07263): the scheduler's placements executed by real group
trainers, in this process or in Ray actors (:mod:`cloud.tlora.ray_workers`).

The policy decides, the runtime executes (the same :class:`~cloud.tlora.policy.Scheduler` object
the simulator drives).  One thread per worker of the scheduler owns that worker's group host (an
in-process :class:`LocalHost`, or a :class:`~cloud.tlora.ray_workers.RayHost` with
``options.ray``).  Between two steps a worker reconciles its group with the latest placement:
jobs placed elsewhere leave (their :class:`~cloud.tlora.trainer.JobState` is parked), jobs placed
here join (fresh, or from the parked state once their previous worker let go).  Every step's
per-job loss becomes an event; every ``checkpoint_every`` steps each member's state is saved under
``workdir/<job_id>/checkpoint``.  A Ray worker that dies is replaced by a fresh actor whose jobs
resume from those checkpoints (the data order and schedule are functions of the step alone, so
the run ends with the adapter an uninterrupted run would have).  A finished job's adapter is
saved as a PEFT directory under ``workdir/<job_id>/adapter``, the scheduler told of the
departure (it regroups), and ``on_finished`` called.

Nano-batches: with ``nano_batches=None`` each worker runs AIMD on their count
(:class:`~cloud.tlora.nano.NanoBatchAimd`, on seconds per sample); a number fixes it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cloud.tlora.cost import shape_of
from cloud.tlora.jobs import JobPlan
from cloud.tlora.nano import NanoBatchAimd
from cloud.tlora.policy import Scheduler
from cloud.tlora.solo import load_base
from cloud.tlora.trainer import STATE_FILE, GroupTrainer, JobState, StepReport
from edgeweave.config import TloraOptions
from edgeweave.models.config import ModelConfig
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.wire.fine_tuning import JobStatus

CHECKPOINT_EVERY = 20
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class WorkerDied(RuntimeError):
    """The worker holding a group is gone (a Ray actor's process or node); its jobs resume from
    their checkpoints on a fresh one."""


@dataclass(frozen=True)
class JobEvent:
    t: float  # unix seconds
    message: str
    step: int | None = None
    loss: float | None = None
    level: str = "info"


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    status: JobStatus
    step: int
    total_steps: int
    samples: int
    tokens: int
    loss: float | None
    group: tuple[str, ...]
    started_at: float | None
    finished_at: float | None
    adapter_dir: Path | None
    error: str | None


class GroupHost(Protocol):
    """Where one group trains: this process or a Ray actor."""

    @property
    def job_ids(self) -> tuple[str, ...]: ...

    def add(self, plan: JobPlan, resume: JobState | None) -> None: ...

    def remove(self, job_id: str) -> JobState: ...

    def state(self, job_id: str) -> JobState: ...

    def step(self, nano_batches: int) -> StepReport: ...

    def checkpoint(self, job_id: str, directory: Path) -> None: ...

    def close(self) -> None: ...


class LocalHost:
    """A group trained in this process, on its own copy of the base (a SuperModel wraps it)."""

    def __init__(self, base_model: str, impl: str) -> None:
        self.trainer = GroupTrainer(load_base(base_model), impl)  # type: ignore[arg-type]

    @property
    def job_ids(self) -> tuple[str, ...]:
        return self.trainer.job_ids

    def add(self, plan: JobPlan, resume: JobState | None) -> None:
        self.trainer.add(plan, resume)

    def remove(self, job_id: str) -> JobState:
        return self.trainer.remove(job_id)

    def state(self, job_id: str) -> JobState:
        return self.trainer.state(job_id)

    def step(self, nano_batches: int) -> StepReport:
        return self.trainer.step(nano_batches)

    def checkpoint(self, job_id: str, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.trainer.state(job_id).save(directory)

    def close(self) -> None:
        pass


@dataclass
class _Job:
    plan: JobPlan
    status: JobStatus = "queued"
    step: int = 0
    tokens: int = 0
    loss: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    adapter_dir: Path | None = None
    error: str | None = None
    host: int | None = None  # the worker whose group holds it now
    parked: JobState | None = None  # its state between two groups
    events: list[JobEvent] = field(default_factory=list)


class TloraRuntime:
    """Jobs submitted, scheduled by ``scheduler``, trained by background worker threads."""

    def __init__(
        self,
        options: TloraOptions,
        base_model: str,
        scheduler: Scheduler,
        on_finished: Callable[[str, Path], None] | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        nano_batches: int | None = None,
        impl: str = "segmented",
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1 (got {checkpoint_every})")
        self.options = options
        self.base_model = base_model
        self.scheduler = scheduler
        self.on_finished = on_finished
        self.checkpoint_every = checkpoint_every
        self.nano_batches = nano_batches
        self.impl = impl
        self.config: ModelConfig = ModelConfig.from_hf_dir(resolve_checkpoint(base_model))
        self._cv = threading.Condition()
        self._jobs: dict[str, _Job] = {}
        self._placement = scheduler.placement()
        self._threads: list[threading.Thread] = []
        self._stop = False
        self._owns_ray = False
        self._hosts: dict[int, GroupHost] = {}
        self._generation = 0
        self.restarts = 0  # groups resumed on a fresh worker after their worker died

    # --- the API's side ----------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            raise RuntimeError("runtime already started")
        if self.options.ray:
            from cloud.tlora.ray_workers import ensure_ray

            self._owns_ray = ensure_ray()
        for w in self.scheduler.workers:
            t = threading.Thread(target=self._work, args=(w.index,), name=f"tlora-worker-{w.index}", daemon=True)
            self._threads.append(t)
            t.start()

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []
        for host in self._hosts.values():
            host.close()
        self._hosts = {}
        if self._owns_ray:
            import ray

            ray.shutdown()
            self._owns_ray = False

    def submit(self, plan: JobPlan) -> None:
        """Queue ``plan``; ValueError if its id is taken, its base is another model, or no
        worker can hold it."""
        if plan.base_model != self.base_model:
            raise ValueError(
                f"job {plan.job_id!r}: base_model {plan.base_model!r} is not this runtime's {self.base_model!r}"
            )
        shape = shape_of(plan, self.config)
        with self._cv:
            if plan.job_id in self._jobs:
                raise ValueError(f"job {plan.job_id!r} already exists")
            self._placement = self.scheduler.arrive(shape, time.monotonic())
            job = self._jobs[plan.job_id] = _Job(plan)
            self._event(job, f"queued: rank {plan.lora.rank}, batch {plan.batch_size}, {plan.total_steps} steps")
            self._cv.notify_all()

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False if it already ended.  KeyError if unknown."""
        with self._cv:
            job = self._get(job_id)
            if job.status in TERMINAL:
                return False
            self._end(job, "cancelled", "cancelled")
            self._cv.notify_all()
            return True

    def progress(self, job_id: str) -> JobProgress:
        with self._cv:
            return self._progress(self._get(job_id))

    def all_progress(self) -> list[JobProgress]:
        with self._cv:
            return [self._progress(j) for j in self._jobs.values()]

    def events(self, job_id: str, after: int = 0) -> list[JobEvent]:
        """The job's events from index ``after`` on (oldest first)."""
        with self._cv:
            return list(self._get(job_id).events[after:])

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every submitted job ended; False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: all(j.status in TERMINAL for j in self._jobs.values()), timeout)

    # --- bookkeeping (under the lock) --------------------------------------------------------
    def _get(self, job_id: str) -> _Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise KeyError(f"no fine-tuning job {job_id!r}") from None

    def _progress(self, job: _Job) -> JobProgress:
        group = self._placement.group_of(job.plan.job_id)
        return JobProgress(
            job.plan.job_id,
            job.status,
            job.step,
            job.plan.total_steps,
            job.step * job.plan.batch_size,
            job.tokens,
            job.loss,
            group.job_ids if group and job.status == "running" else (),
            job.started_at,
            job.finished_at,
            job.adapter_dir,
            job.error,
        )

    def _event(
        self, job: _Job, message: str, level: str = "info", step: int | None = None, loss: float | None = None
    ) -> None:
        job.events.append(JobEvent(time.time(), message, step, loss, level))

    def _end(self, job: _Job, status: JobStatus, message: str, error: str | None = None) -> None:
        job.status, job.error, job.finished_at = status, error, time.time()
        job.parked = None
        self._event(job, message, "error" if status == "failed" else "info")
        self._placement = self.scheduler.depart(job.plan.job_id, time.monotonic())

    def _job_dir(self, job_id: str) -> Path:
        return self.options.workdir / job_id

    # --- a worker's thread -------------------------------------------------------------------
    def _new_host(self, worker: int) -> GroupHost:
        if not self.options.ray:
            return LocalHost(self.base_model, self.impl)
        from cloud.tlora.ray_workers import RayHost

        self._generation += 1
        threads = self.options.threads_per_worker or 1
        return RayHost(worker, self._generation, self.base_model, self.impl, cpus=1, threads=threads)

    def _work(self, worker: int) -> None:
        aimd = NanoBatchAimd()
        host: GroupHost | None = None
        while True:
            with self._cv:
                self._cv.wait_for(functools.partial(self._wake, worker, host), timeout=1.0)
                if self._stop:
                    return
                if not self._has_work(worker, host):
                    continue
            try:
                if host is None:
                    host = self._hosts[worker] = self._new_host(worker)
                self._reconcile(worker, host)
                if host.job_ids:
                    n = self.nano_batches or aimd.n
                    report = host.step(n)
                    if self.nano_batches is None and report.losses:
                        aimd.observe(report.seconds, sum(j.samples for j in report.losses))
                    self._after_step(worker, host, report)
            except Exception as e:  # noqa: BLE001 (a dead worker or a failing group must not kill the thread)
                host = self._recover(worker, host, e, died=isinstance(e, WorkerDied))

    def _wake(self, worker: int, host: GroupHost | None) -> bool:
        return self._stop or self._has_work(worker, host)

    def _has_work(self, worker: int, host: GroupHost | None) -> bool:
        return bool(self._placed(worker)) or bool(host and host.job_ids)

    def _placed(self, worker: int) -> tuple[str, ...]:
        return next((g.job_ids for g in self._placement.groups if g.worker == worker), ())

    def _reconcile(self, worker: int, host: GroupHost) -> None:
        """Let go of jobs placed elsewhere (or ended), take in the jobs placed here."""
        with self._cv:
            placed = self._placed(worker)
            leaving = [j for j in host.job_ids if j not in placed]
        for job_id in leaving:
            state = host.remove(job_id)
            with self._cv:
                job = self._jobs[job_id]
                job.host = None
                job.parked = None if job.status in TERMINAL else state
                self._cv.notify_all()
        with self._cv:
            joining = [j for j in self._placed(worker) if j not in host.job_ids and self._jobs[j].host is None]
            plans = {j: (self._jobs[j].plan, self._jobs[j].parked) for j in joining}
        joined = []
        for job_id, (plan, resume) in plans.items():
            host.add(plan, resume)
            with self._cv:
                job = self._jobs[job_id]
                ended = job.status in TERMINAL  # cancelled while it was being added
                if not ended:
                    job.host, job.parked = worker, None
                    if job.started_at is None:
                        job.started_at = time.time()
                    job.status = "running"
                    joined.append(job_id)
            if ended:
                host.remove(job_id)
        with self._cv:
            for job_id in joined:
                self._event(
                    self._jobs[job_id],
                    f"training on worker {worker} in group {', '.join(host.job_ids)}",
                    step=self._jobs[job_id].step,
                )

    def _after_step(self, worker: int, host: GroupHost, report: StepReport) -> None:
        finished: list[tuple[str, Path]] = []
        for loss in report.losses:
            with self._cv:
                job = self._jobs[loss.job_id]
                if job.status in TERMINAL:  # cancelled while the step ran
                    continue
                job.step += 1
                job.tokens += loss.tokens
                job.loss = loss.loss
                self._event(
                    job,
                    f"step {job.step}/{job.plan.total_steps}: training loss={loss.loss:.4f}",
                    step=job.step,
                    loss=loss.loss,
                )
                done = job.step >= job.plan.total_steps
            if done:
                state = host.remove(loss.job_id)
                adapter_dir = state.adapter.save(self._job_dir(loss.job_id) / "adapter")
                with self._cv:
                    job.host, job.adapter_dir = None, adapter_dir
                    self._end(job, "succeeded", f"succeeded: adapter saved to {adapter_dir}")
                    self._cv.notify_all()
                finished.append((loss.job_id, adapter_dir))
            elif job.step % self.checkpoint_every == 0:
                host.checkpoint(loss.job_id, self._job_dir(loss.job_id) / "checkpoint")
        for job_id, adapter_dir in finished:
            if self.on_finished is not None:
                self.on_finished(job_id, adapter_dir)

    def _recover(self, worker: int, host: GroupHost | None, error: Exception, died: bool) -> GroupHost | None:
        """A dead worker: its jobs resume from their last checkpoints (or from the start) on a
        fresh host.  Any other failure fails the group's jobs."""
        with self._cv:  # no host yet (it failed to start): the jobs placed on it
            members = list(host.job_ids) if host else list(self._placed(worker))
        if host is not None:
            try:
                host.close()
            except Exception:  # noqa: BLE001 (it is already gone)
                pass
        self._hosts.pop(worker, None)
        if not died:
            with self._cv:
                for job_id in members:
                    job = self._jobs[job_id]
                    job.host = None
                    if job.status not in TERMINAL:
                        self._end(job, "failed", f"failed: {error}", error=f"{type(error).__name__}: {error}")
                self._cv.notify_all()
            return None
        self.restarts += 1
        with self._cv:
            for job_id in members:
                job = self._jobs[job_id]
                job.host = None
                if job.status in TERMINAL:
                    continue
                directory = self._job_dir(job_id) / "checkpoint"
                job.parked = JobState.load(directory, job.plan) if (directory / STATE_FILE).is_file() else None
                job.step = job.parked.step if job.parked else 0
                self._event(
                    job, f"worker {worker} died ({error}); resuming from step {job.step}", "warn", step=job.step
                )
            self._cv.notify_all()
        return None
