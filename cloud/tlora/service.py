"""The fine-tuning API's job store (tLoRA, arXiv 2602.07263): OpenAI-shaped jobs in, tLoRA's
:class:`~cloud.tlora.jobs.JobPlan` out, and the runtime's progress back as OpenAI-shaped jobs.

:meth:`FineTuningService.create` checks a :class:`FineTuningJobCreate` against what this cloud
serves (the base must be the served model; the suffix, the household's adapter name, must be
free) and turns it into a plan: a household's training split from
:func:`edgeweave.data.households.corpus`, or the inline examples; the job's length from
``n_steps`` or ``n_epochs`` (:func:`~cloud.tlora.jobs.steps_for_epochs`).  The
:class:`~cloud.tlora.runtime.TloraRuntime` trains it beside other jobs; its
:class:`~cloud.tlora.runtime.JobProgress` becomes :class:`FineTuningJob` and its
:class:`~cloud.tlora.runtime.JobEvent` list :class:`FineTuningEvent` (one per logged step with
the loss, and the job's state changes).  When a job succeeds and ``serve_finished`` is set, its
adapter is handed to ``serve(name, adapter)`` (the cloud engine's ``add_adapter``), so the model
id ``<model>:<suffix>`` answers at once.

Bad specs are :class:`ApiError` 400s naming the field (``model``, ``suffix``,
``training_data[3].prompt``, ``hyperparameters.warmup_steps``), an unknown job a 404.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cloud.tlora.cost import StepCost, fit, measure, profile_groups
from cloud.tlora.jobs import JobPlan, steps_for_epochs
from cloud.tlora.policy import Scheduler, TloraScheduler, workers_of
from cloud.tlora.runtime import JobEvent, JobProgress, TloraRuntime
from edgeweave.config import TloraOptions
from edgeweave.data import households
from edgeweave.data.smarthome import Example
from edgeweave.errors import UsageError
from edgeweave.models.config import ModelConfig
from edgeweave.models.hf_tokenizer import load_tokenizer
from edgeweave.models.lora import LoraAdapter, LoraConfig
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.tokenizer import ChatMessage
from edgeweave.serving.http_errors import ApiError
from edgeweave.wire.fine_tuning import (
    FineTuningEvent,
    FineTuningEventList,
    FineTuningJob,
    FineTuningJobCreate,
    FineTuningJobList,
    HouseholdData,
)

log = logging.getLogger("edgeweave.cloud.tlora")
ServeAdapter = Callable[[str, LoraAdapter], None]
COST_FILE = "step_cost.json"  # the measured step-time model, under the workdir
CAPACITY_SAMPLES = 64  # a worker's capacity: this many full-context samples per step (our choice)
# the jobs timed to fit it, (rank, batch size, data): short single samples expose the per-step and
# per-job costs, long batches the per-token ones (with tokens alone the fit cannot tell them apart)
CALIBRATION = ((4, 1, "short"), (16, 1, "short"), (8, 4, "long"), (32, 2, "long"))
LEVELS: dict[str, Literal["info", "warn", "error"]] = {"info": "info", "warn": "warn", "error": "error"}


def scheduler_for(options: TloraOptions, base_model: str) -> TloraScheduler:
    """tLoRA's policy over ``options.workers`` workers, with the step-time model measured on this
    machine: once, then read from ``workdir/step_cost.json`` (delete it to measure again)."""
    path = options.workdir / COST_FILE
    if path.is_file():
        try:
            cost = StepCost(**json.loads(path.read_text()))
        except (ValueError, TypeError) as e:
            raise UsageError("cloud.tlora.workdir", f"{path} is not a step-time model ({e}); delete it") from None
    else:
        log.info("measuring the step-time model of %s (once; kept in %s)", base_model, path)
        h = households.household("calibration", 0)
        data = {
            "short": tuple(households.corpus(h, "train", 64, {"chat"})),
            "long": tuple(households.corpus(h, "train", 64)),
        }
        plans = [
            JobPlan(f"calibration-{i}", base_model, LoraConfig(rank=r, alpha=2.0 * r), b, 1e-3, 8, 0, 0, data[kind])
            for i, (r, b, kind) in enumerate(CALIBRATION)
        ]
        cost, r2 = fit(measure(base_model, plans, profile_groups(len(plans), len(plans)), steps=2))
        log.info("step-time model: %s (R^2 %.3f)", cost.describe(), r2)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(cost)))
    context = ModelConfig.from_hf_dir(resolve_checkpoint(base_model)).max_seq_len
    return TloraScheduler(cost, workers_of(options.workers, CAPACITY_SAMPLES * context))


@dataclass(frozen=True)
class _Job:
    id: str
    request: FineTuningJobCreate
    created_at: int


class FineTuningService:
    """The jobs of one cloud's fine-tuning API over one :class:`TloraRuntime` (on the served base)."""

    def __init__(
        self,
        options: TloraOptions,
        base_model: str,
        served_name: str,
        scheduler: Scheduler,
        serve: ServeAdapter | None = None,
        reserved: Collection[str] = (),
    ) -> None:
        """``base_model``: the served model's name or checkpoint (what jobs train on);
        ``served_name``: its model id; ``scheduler``: tLoRA's policy over the workers;
        ``reserved``: adapter names already served (configured)."""
        self.base_model = base_model
        self.served_name = served_name
        self._serve = serve if options.serve_finished else None
        self._reserved = frozenset(reserved)
        directory = resolve_checkpoint(base_model)
        cfg = ModelConfig.from_hf_dir(directory)
        self._context = cfg.max_seq_len
        self._tokenizer = load_tokenizer(directory, cfg)
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()  # _jobs: written by requests, read by the runtime's callback
        self.runtime = TloraRuntime(options, base_model, scheduler, on_finished=self._finished)

    def start(self) -> None:
        self.runtime.start()

    def close(self) -> None:
        self.runtime.close()

    # --- requests ---

    def create(self, req: FineTuningJobCreate) -> FineTuningJob:
        if req.model != self.served_name:
            raise ApiError(
                400, f"model: {req.model!r} is not served here (fine-tune {self.served_name!r})", param="model"
            )
        if req.validation_data is not None:
            raise ApiError(400, "validation_data: not supported by this server", param="validation_data")
        examples = self._examples(req)
        hp = req.hyperparameters
        if hp.n_steps is not None:
            total = hp.n_steps
        else:
            assert hp.n_epochs is not None  # Hyperparameters requires exactly one of them
            total = steps_for_epochs(len(examples), hp.batch_size, hp.n_epochs)
        if hp.warmup_steps > total:
            raise ApiError(
                400,
                f"hyperparameters.warmup_steps: {hp.warmup_steps} exceeds the job's {total} steps",
                param="hyperparameters.warmup_steps",
            )
        job = _Job(f"ftjob-{uuid.uuid4().hex[:24]}", req, int(time.time()))
        plan = JobPlan(
            job_id=job.id,
            base_model=self.base_model,
            lora=LoraConfig(rank=hp.rank, alpha=hp.alpha, target_modules=hp.target_modules),
            batch_size=hp.batch_size,
            learning_rate=hp.learning_rate,
            total_steps=total,
            warmup_steps=hp.warmup_steps,
            seed=hp.seed,
            examples=tuple(examples),
            slowdown_bound=hp.slowdown_bound,
        )
        with self._lock:  # two requests for one suffix: the second is refused
            self._check_suffix(req.suffix)
            self._jobs[job.id] = job
        self.runtime.submit(plan)
        return self.retrieve(job.id)

    def list(self, after: str | None = None, limit: int = 20) -> FineTuningJobList:
        """Newest first; ``after``: the last job id of the previous page."""
        with self._lock:
            ids = list(self._jobs)[::-1]  # submission order, newest first
        if after is not None:
            if after not in self._jobs:
                raise ApiError(404, f"after: no fine-tuning job {after!r}", param="after")
            ids = ids[ids.index(after) + 1 :]
        return FineTuningJobList(data=[self.retrieve(i) for i in ids[:limit]], has_more=len(ids) > limit)

    def retrieve(self, job_id: str) -> FineTuningJob:
        job = self._job(job_id)
        return _wire_job(job, self.runtime.progress(job_id))

    def cancel(self, job_id: str) -> FineTuningJob:
        self._job(job_id)
        if not self.runtime.cancel(job_id):
            status = self.runtime.progress(job_id).status
            raise ApiError(400, f"job {job_id} has already {status} and cannot be cancelled", param="job_id")
        return self.retrieve(job_id)

    def events(self, job_id: str, after: str | None = None, limit: int = 20) -> FineTuningEventList:
        """Oldest first; ``after``: the last event id of the previous page."""
        self._job(job_id)
        start = 0
        if after is not None:
            start = _event_index(job_id, after) + 1
        events = self.runtime.events(job_id, start)
        data = [_wire_event(job_id, start + i, e) for i, e in enumerate(events[:limit])]
        return FineTuningEventList(data=data, has_more=len(events) > limit)

    # --- helpers ---

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no fine-tuning job {job_id!r}", param="job_id")
        return job

    def _check_suffix(self, suffix: str) -> None:
        taken = suffix in self._reserved or any(
            j.request.suffix == suffix and self.runtime.progress(j.id).status not in ("failed", "cancelled")
            for j in self._jobs.values()
        )
        if taken:
            raise ApiError(
                400, f"suffix: {self.served_name}:{suffix} is already taken by another adapter or job", param="suffix"
            )

    def _examples(self, req: FineTuningJobCreate) -> list[Example]:
        data = req.training_data
        if isinstance(data, HouseholdData):
            return households.corpus(households.household(data.household, data.seed), "train", data.train_size)
        if not data:
            raise ApiError(400, "training_data: give at least one example", param="training_data")
        out = []
        for i, ex in enumerate(data):
            tokens = len(self._tokenizer.render_chat([ChatMessage("user", ex.prompt)]))
            tokens += len(self._tokenizer.encode(ex.completion)) + 1  # the reply's end marker
            if tokens > self._context:
                field = f"training_data[{i}]"
                raise ApiError(
                    400, f"{field}: {tokens} tokens exceed the model's context of {self._context}", param=field
                )
            out.append(Example(ex.prompt, ex.completion))
        return out

    def _finished(self, job_id: str, adapter_dir: Path) -> None:
        """The runtime's callback (its thread): serve the succeeded job's adapter."""
        if self._serve is None:
            return
        with self._lock:
            suffix = self._jobs[job_id].request.suffix
        try:
            self._serve(suffix, LoraAdapter.load(adapter_dir))
        except Exception:
            log.exception("job %s succeeded but its adapter %s cannot be served", job_id, adapter_dir)
        else:
            log.info("job %s succeeded: serving %s:%s", job_id, self.served_name, suffix)


def _wire_job(job: _Job, p: JobProgress) -> FineTuningJob:
    req = job.request
    return FineTuningJob(
        id=job.id,
        model=req.model,
        fine_tuned_model=f"{req.model}:{req.suffix}",
        status=p.status,
        created_at=job.created_at,
        started_at=None if p.started_at is None else int(p.started_at),
        finished_at=None if p.finished_at is None else int(p.finished_at),
        hyperparameters=req.hyperparameters,
        trained_tokens=p.tokens,
        trained_samples=p.samples,
        step=p.step,
        total_steps=p.total_steps,
        train_loss=p.loss,
        error=p.error,
        group=[j for j in p.group if j != job.id],
    )


def _event_id(job_id: str, index: int) -> str:
    return f"ftevent-{job_id.removeprefix('ftjob-')}-{index}"


def _event_index(job_id: str, event_id: str) -> int:
    prefix = _event_id(job_id, 0)[:-1]
    tail = event_id.removeprefix(prefix)
    if tail == event_id or not tail.isdigit():
        raise ApiError(400, f"after: {event_id!r} is not an event of job {job_id}", param="after")
    return int(tail)


def _wire_event(job_id: str, index: int, e: JobEvent) -> FineTuningEvent:
    return FineTuningEvent(
        id=_event_id(job_id, index),
        created_at=e.t,
        level=LEVELS.get(e.level, "info"),
        message=e.message,
        type="metrics" if e.loss is not None else "message",
        step=e.step,
        train_loss=e.loss,
    )
