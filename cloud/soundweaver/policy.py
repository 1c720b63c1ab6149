"""SoundWeaver's serving policy (arXiv 2603.07865), pure and synchronous: a request in, a plan out.

:class:`SoundWeaver` composes the three mechanisms of the paper: the reference selector
(:mod:`~cloud.soundweaver.selector`), the skip gater (:mod:`~cloud.soundweaver.gater`) and the
cache manager (:mod:`~cloud.soundweaver.cache`).  For each :class:`SoundJob` it returns a
:class:`Plan`: generate from noise (a miss, or the gater chose not to skip), or warm-start from an
aligned reference noised to schedule index ``start``.  After the runtime has run the plan it reports
an :class:`Outcome`; the policy rewards the gater, raises the quality bar, and admits the result to
the cache.  :meth:`SoundWeaver.idle` names a refinement job for an idle server.

Every policy here and in :mod:`~cloud.soundweaver.baselines` has this one interface
(:class:`CachePolicy`), so the live service and the benchmark drive them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from cloud.soundweaver.cache import CacheEntry, CacheManager, CacheOptions
from cloud.soundweaver.gater import GateContext, GaterOptions, QualityBar, SkipGater
from cloud.soundweaver.selector import MEL, Layout, SelectorOptions, align, select
from edgeweave.audio.solvers import Solver


@dataclass(frozen=True)
class SoundJob:
    prompt: str
    embedding: np.ndarray  # unit-norm caption embedding
    duration: float
    steps: int
    seed: int
    solver: Solver = "ddim"


@dataclass
class Plan:
    steps: int  # the schedule's length
    solver: Solver
    start: int = 0  # the schedule index the run begins at (0: from noise)
    init: torch.Tensor | None = None  # warm start: the aligned clean reference, noised to `start` by the runtime
    state: torch.Tensor | None = None  # resume: a cached latent entering `start` (NIRVANA)
    keep: tuple[int, ...] = ()  # schedule indices whose latents the runtime returns (NIRVANA caches them)
    reference: int | None = None  # the cache key used
    reference_prompt: str | None = None  # its caption
    similarity: float = 0.0
    arm: int | None = None
    context: GateContext | None = None
    refine: int | None = None  # a refinement job: the cache key it regenerates

    @property
    def hit(self) -> bool:
        return self.reference is not None and self.start > 0


@dataclass
class Outcome:
    mel: torch.Tensor
    quality: float  # the online judge's text-audio score
    steps_run: int
    states: dict[int, torch.Tensor] = field(default_factory=dict)


class CachePolicy(Protocol):
    name: str

    def plan(self, job: SoundJob, now: float, load: float) -> Plan: ...

    def observe(self, job: SoundJob, plan: Plan, outcome: Outcome, now: float) -> None: ...

    def idle(self, now: float) -> tuple[SoundJob, Plan] | None: ...

    def cache_entries(self) -> int: ...


def entry_for(job: SoundJob, outcome: Outcome, full: bool) -> CacheEntry:
    return CacheEntry(
        key=-1, prompt=job.prompt, embedding=job.embedding, duration=job.duration,
        mel=outcome.mel.to(torch.float16), quality=outcome.quality, full_steps=full,
    )  # fmt: skip


class SoundWeaver:
    """The paper's policy: selector + contextual-bandit gater + importance/quality cache."""

    name = "soundweaver"

    def __init__(
        self,
        cache: CacheOptions | None = None,
        selector: SelectorOptions | None = None,
        gater: GaterOptions | None = None,
        name: str = "soundweaver",
        refine_steps: int = 50,
        layout: Layout = MEL,
    ) -> None:
        self.cache = CacheManager(cache)
        self.selector = selector or SelectorOptions()
        self.gater = SkipGater(gater)
        self.bar = QualityBar()
        self.name = name
        self.refine_steps = refine_steps
        self.layout = layout

    def plan(self, job: SoundJob, now: float, load: float) -> Plan:
        ref = select(self.cache, job.embedding, job.duration, self.selector)
        if ref is None:
            return Plan(job.steps, job.solver)
        ctx = GateContext(ref.similarity, ref.duration_ratio, ref.entry.quality, load)
        arm = self.gater.choose(ctx)
        start = min(round(self.gater.options.arms[arm] * job.steps), job.steps - 1)
        if start == 0:  # the gater chose to ignore the reference: it was not used
            return Plan(job.steps, job.solver, arm=arm, context=ctx, similarity=ref.similarity)
        self.cache.touch(ref.entry.key, now)
        init = align(ref.entry.mel.float(), ref.entry.duration, job.duration, self.layout)
        return Plan(
            job.steps, job.solver, start, init, reference=ref.entry.key, reference_prompt=ref.entry.prompt,
            similarity=ref.similarity, arm=arm, context=ctx,
        )  # fmt: skip

    def observe(self, job: SoundJob, plan: Plan, outcome: Outcome, now: float) -> None:
        full = plan.start == 0
        if full:
            self.bar.observe(outcome.quality)
        if plan.arm is not None and plan.context is not None:
            self.gater.update(plan.context, plan.arm, self.gater.reward(plan.arm, outcome.quality, self.bar))
        if plan.refine is not None and plan.refine in self.cache.entries:
            old = self.cache.entries[plan.refine]
            if outcome.quality > old.quality:
                old.mel, old.quality, old.full_steps = outcome.mel.to(torch.float16), outcome.quality, True
            else:
                old.full_steps = True  # tried: do not pick it again
            return
        self.cache.admit(entry_for(job, outcome, full), now)

    def idle(self, now: float) -> tuple[SoundJob, Plan] | None:
        e = self.cache.refinement(now)
        if e is None:
            return None
        job = SoundJob(e.prompt, e.embedding, e.duration, self.refine_steps, e.key)
        return job, Plan(job.steps, job.solver, refine=e.key)

    def cache_entries(self) -> int:
        return len(self.cache)
