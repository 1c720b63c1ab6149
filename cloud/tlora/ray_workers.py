"""tLoRA's scale-out on Ray (arXiv 2602.07263): each group trains in one Ray actor.

A :class:`GroupActor` holds one :class:`~cloud.tlora.trainer.GroupTrainer` on its own copy of the
frozen base; :class:`RayHost` drives it from the runtime with the same methods as an in-process
group (:class:`cloud.tlora.runtime.LocalHost`).  The scheduler's worker index names the actor
(``tlora-w<index>-<generation>``); each asks Ray for ``cpus`` CPUs, so on a local Ray started
with ``num_cpus=2`` two one-CPU groups train side by side, and on a cluster Ray places each
actor on a node with that much room.  An actor is never restarted by Ray (``max_restarts=0``):
when one dies (its process or node lost) the next call raises :class:`WorkerDied`, and the runtime
resumes the group's jobs from their checkpoints on a fresh actor.  Checkpoints are written by the
actor itself, so on a cluster the runtime's workdir must be a shared filesystem.
"""

from __future__ import annotations

import os
from pathlib import Path

import ray
import ray.exceptions

from cloud.tlora.jobs import JobPlan
from cloud.tlora.runtime import LocalHost, WorkerDied
from cloud.tlora.trainer import JobState, StepReport

LOCAL_CPUS = 2  # a local Ray (when none is running): two CPU workers


def ensure_ray() -> bool:
    """Start a local Ray unless one is running; True when this call started it."""
    if ray.is_initialized():
        return False
    ray.init(num_cpus=LOCAL_CPUS, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return True


class GroupActor(LocalHost):
    """One group's trainer inside a Ray worker process (the in-process group's methods, with the
    worker's torch thread count set first)."""

    def __init__(self, base_model: str, impl: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        super().__init__(base_model, impl)

    def pid(self) -> int:
        return os.getpid()

    def checkpoint(self, job_id: str, directory: str | Path) -> None:  # a str crosses Ray as well as a Path
        super().checkpoint(job_id, Path(directory))


class RayHost:
    """A group in a Ray actor, with the in-process group's methods (see LocalHost)."""

    def __init__(self, worker: int, generation: int, base_model: str, impl: str, cpus: float, threads: int) -> None:
        remote = ray.remote(num_cpus=cpus, max_restarts=0, max_task_retries=0)(GroupActor)
        self.actor = remote.options(name=f"tlora-w{worker}-{generation}").remote(base_model, impl, threads)
        self._jobs: list[str] = []

    def _call(self, method: str, *args: object) -> object:
        try:
            return ray.get(getattr(self.actor, method).remote(*args))
        except ray.exceptions.RayActorError as e:
            raise WorkerDied(f"group actor died ({type(e).__name__})") from e

    @property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(self._jobs)

    def pid(self) -> int:
        return int(self._call("pid"))  # type: ignore[call-overload]

    def add(self, plan: JobPlan, resume: JobState | None) -> None:
        self._call("add", plan, resume)
        self._jobs.append(plan.job_id)

    def remove(self, job_id: str) -> JobState:
        state = self._call("remove", job_id)
        self._jobs.remove(job_id)
        return state  # type: ignore[return-value]

    def state(self, job_id: str) -> JobState:
        return self._call("state", job_id)  # type: ignore[return-value]

    def step(self, nano_batches: int) -> StepReport:
        return self._call("step", nano_batches)  # type: ignore[return-value]

    def checkpoint(self, job_id: str, directory: Path) -> None:
        self._call("checkpoint", job_id, str(directory))

    def close(self) -> None:
        ray.kill(self.actor, no_restart=True)
