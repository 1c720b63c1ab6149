"""SoundWeaver's glue to the mechanisms: a policy's plan run on the sound model, vocoded, judged, reported.

:class:`SoundRuntime` serves one :class:`~cloud.soundweaver.policy.SoundJob` at a time
(:meth:`SoundRuntime.serve`, synchronous: the HTTP layer runs it on one worker thread, as one
accelerator would): the policy plans, the model samples (from noise, from an aligned reference
noised to the plan's start, or from a cached latent), Griffin-Lim vocodes, the online judge (the
CLAP-style model of :mod:`edgeweave.audio.judges`) scores the result against the caption, and the
policy learns from the outcome.  :meth:`SoundRuntime.refine` runs the policy's idle job, if any.
The live service and the benchmark both call these, so the benchmark measures the serving code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cloud.soundweaver.policy import CachePolicy, Outcome, Plan, SoundJob
from edgeweave.audio.judges import Judges
from edgeweave.audio.solvers import Solver
from edgeweave.models.sound import LatentSoundModel, SampleResult, StepCallback


@dataclass(frozen=True)
class GeneratedSound:
    audio: np.ndarray  # float32 at 16 kHz
    seconds: float
    steps: int  # the schedule's length
    steps_run: int
    hit: bool  # warm-started from a cached sound (or latent)
    reference: str | None  # the cached sound's caption
    similarity: float
    quality: float  # the online judge's text-audio score
    latency_s: float  # planning, sampling, vocoding and judging
    solver: Solver


class SoundRuntime:
    def __init__(
        self, model: LatentSoundModel, judges: Judges, policy: CachePolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.model = model
        self.judges = judges
        self.policy = policy
        self.clock = clock

    def _run(self, job: SoundJob, plan: Plan, on_step: StepCallback | None) -> SampleResult:
        m = self.model
        if plan.state is not None:
            state = plan.state.float()
            return m.resume(job.prompt, job.embedding, state, plan.steps, plan.start, job.seed, plan.solver, on_step)
        return m.sample(
            job.prompt, job.embedding, job.duration, plan.steps, job.seed, plan.solver, plan.init, plan.start,
            plan.keep, on_step,
        )  # fmt: skip

    def _execute(
        self, job: SoundJob, plan: Plan, now: float, started: float, on_step: StepCallback | None
    ) -> GeneratedSound:
        result = self._run(job, plan, on_step)
        audio = self.model.decode(result.mel, job.duration, job.seed)
        _, _, score = self.judges.judge(audio, job.embedding)
        outcome = Outcome(result.mel, max(score, 0.0), result.steps_run, result.states)
        self.policy.observe(job, plan, outcome, now)
        return GeneratedSound(
            audio, job.duration, plan.steps, result.steps_run, plan.hit, plan.reference_prompt if plan.hit else None,
            plan.similarity, outcome.quality, time.perf_counter() - started, plan.solver,
        )  # fmt: skip

    def serve(self, job: SoundJob, load: float = 0.0, on_step: StepCallback | None = None) -> GeneratedSound:
        """``job`` generated per the policy's plan (``load``: the queue, scaled into [0, 1])."""
        started = time.perf_counter()
        now = self.clock()
        return self._execute(job, self.policy.plan(job, now, load), now, started, on_step)

    def refine(self) -> bool:
        """Run the policy's idle job (regenerate a popular, poor cached sound); False: none to run."""
        now = self.clock()
        work = self.policy.idle(now)
        if work is None:
            return False
        self._execute(*work, now, time.perf_counter(), None)
        return True
