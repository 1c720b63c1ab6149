"""DiSCo in the live coordinator: each chat answer opened as the policy plans, moved when it
pays, and accounted for.

:class:`DiscoRuntime` joins the pure :class:`~coordinator.disco.policy.DiscoPolicy`
to the dispatcher and the system-neutral streaming mechanism
(:mod:`coordinator.streaming.answer`) through one controller per answer
(:class:`DiscoController`).  The per-token cost decision reads the other
tier's best endpoint and the involved device's energy from a cache refreshed
when the registry's version moves.  The prompt's token count is
not known before an endpoint tokenizes it, so plans use an estimate (text
length over the characters per token measured on earlier answers); the exact
count is what is accounted.  When an answer ends, every endpoint that worked
on it (race losers and migration sources included) is charged for the prompt
it prefilled and the tokens it generated (less what a warm left in its cache),
every warm round for what it evaluated; its TTFT feeds the profiles.  A
client's ``prefer`` picks where the answer starts, and a move for cost away
from that tier needs the request's ``allow_cost_moves``
(:func:`~coordinator.disco.policy.cost_moves_allowed`); failures, stalls and
the forced move (``X-Edgeweave-Migrate-After``) move it regardless, the forced
one stopping the source at once so that it happens however fast the source is.
"""

from __future__ import annotations

import math
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from coordinator.cluster.metrics import CoordinatorMetrics
from coordinator.cluster.placement import Candidate, Tier
from coordinator.disco.cost import DeviceEnergy
from coordinator.disco.migration import other
from coordinator.disco.policy import DiscoPolicy, DispatchPlan, Prefer, cost_moves_allowed
from coordinator.streaming.answer import LiveAnswer, live_answer
from coordinator.streaming.controller import Move, Opening, Outcome, Progress, Warm
from coordinator.streaming.dispatch import Dispatcher
from coordinator.streaming.routes import Job

CHARS_PER_TOKEN_PRIOR = 4.0  # English text under BPE tokenizers, until measured


def tier_of(endpoint: str) -> Tier:
    return "device" if endpoint.startswith("device:") else "cloud"


class PromptSize:
    """Prompt tokens from prompt characters, at the ratio measured on answered prompts."""

    def __init__(self) -> None:
        self._chars = 0
        self._tokens = 0

    def estimate(self, chars: int) -> int:
        ratio = self._chars / self._tokens if self._tokens else CHARS_PER_TOKEN_PRIOR
        return max(1, math.ceil(chars / ratio))

    def observe(self, chars: int, tokens: int) -> None:
        if chars > 0 and tokens > 0:
            self._chars += chars
            self._tokens += tokens


class DiscoRuntime:
    def __init__(self, policy: DiscoPolicy, dispatcher: Dispatcher, metrics: CoordinatorMetrics) -> None:
        self.policy = policy
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.sizes = PromptSize()

    def answer(
        self,
        job: Job,
        prompt_chars: int | None,
        prefer: Prefer,
        forced_after: int | None,
        allow_cost_moves: bool = False,
    ) -> tuple[str, AbstractAsyncContextManager[LiveAnswer]]:
        """The plan's label (``race``, ``device``, ``cloud-then-device``, ..., ``pinned``) and the started
        answer for ``job`` as DiSCo plans it, settled when the context exits.  ``prompt_chars``
        is None when the prompt came as token ids (then its length is exact); ``forced_after``: move the
        answer after that many tokens whatever it costs (tests, demos); ``allow_cost_moves``: with a
        preferred tier, whether a move for cost may take the answer off it."""
        estimate = self.sizes.estimate(prompt_chars) if prompt_chars is not None else len(job.prompt or ())
        tiers = self.dispatcher.tiers(job.model)
        plan = self.policy.plan(job.model, estimate, tiers, prefer) if tiers and job.pin is None else None
        controller = DiscoController(self, job, plan, estimate, prompt_chars, forced_after, prefer, allow_cost_moves)
        label = plan.label if plan is not None else "pinned"
        return label, live_answer(job, self.dispatcher.open, controller, self.dispatcher.prefill)

    def energy(self, endpoint: str, model: str) -> DeviceEnergy | None:
        """The measured energy of the device at ``endpoint`` (None for the cloud or before it measured)."""
        if tier_of(endpoint) != "device":
            return None
        rec = self.dispatcher.registry.devices.get(endpoint.split(":", 1)[1])
        return rec.energy(model) if rec is not None else None


@dataclass(frozen=True)
class _Other:
    """What a cost decision needs about the other tier, as of one registry version."""

    version: int
    best: Candidate | None
    energy: DeviceEnergy | None  # of the device involved, source or target


class DiscoController:
    """One answer under DiSCo (a :class:`~coordinator.streaming.controller.Controller`): opened as the
    plan says, moved when the migration policy finds it pays (or to the best other endpoint when its
    source fails or stalls), its cost charged to the spend and its TTFTs fed to the profiles."""

    def __init__(
        self,
        rt: DiscoRuntime,
        job: Job,
        plan: DispatchPlan | None,
        estimate: int,
        prompt_chars: int | None,
        forced_after: int | None,
        prefer: Prefer = "auto",
        allow_cost_moves: bool = False,
    ) -> None:
        self.rt = rt
        self.job = job
        self.plan = plan
        self.estimate = estimate
        self.prompt_chars = prompt_chars
        self.forced_after = forced_after
        self.prefer = prefer
        self.allow_cost_moves = allow_cost_moves
        self._warm_asked = False
        self._other: dict[Tier, _Other] = {}  # source tier -> the other tier's best, cached per registry version

    def opening(self) -> Opening:
        stall_s = self.rt.policy.cfg.stall_s
        p = self.plan
        if p is None:
            return Opening(stall_s=stall_s)
        if p.second is None:
            return Opening((p.first, other(p.first)), stall_s=stall_s)
        return Opening((p.first,), (p.second,), p.second_after_s, stall_s)

    def decide(self, progress: Progress) -> Move | Warm | None:
        d, model, source = self.rt.dispatcher, self.job.model, progress.source
        if progress.trigger != "token" or progress.sent == self.forced_after:
            target = d.fallback(model, source)
            forced = progress.trigger == "token"
            return Move(target, "forced" if forced else progress.trigger, stop_source=forced) if target else None
        here = tier_of(source)
        if self.job.pin is not None or not cost_moves_allowed(self.prefer, self.allow_cost_moves, here):
            return None
        there = self._there(here, source)
        if there.best is None:
            return None
        target_tok_s = there.best.decode_tok_s if there.best.tier == "device" else math.inf
        prompt = progress.prompt_tokens or self.estimate
        warm = progress.warm if progress.warm is not None and progress.warm.endpoint == there.best.endpoint else None
        args = (model, here, prompt, progress.sent, progress.since_first_s, self.job.sampling.max_tokens, target_tok_s)
        policy = self.rt.policy
        raced = self.plan is not None and self.plan.second is not None and self.plan.second_after_s == 0
        left = prompt if raced else 0  # a race's loser prefilled the prompt there (its cache says how much)
        cached = max(warm.cached, left) if warm is not None else left
        if policy.should_migrate(*args, there.energy, cached=cached, warming=warm is not None):
            return Move(there.best.endpoint, "cost", stop_source=True)
        if progress.warm is None and not self._warm_asked:
            if policy.should_warm(*args, there.energy, cached=left):
                self._warm_asked = True
                return Warm(there.best.endpoint)
        return None

    def _there(self, here: Tier, source: str) -> _Other:
        version = self.rt.dispatcher.registry.version
        cached = self._other.get(here)
        if cached is None or cached.version != version:
            best = self.rt.dispatcher.best(self.job.model, other(here))
            device = best.endpoint if best is not None and best.tier == "device" else source
            cached = self._other[here] = _Other(version, best, self.rt.energy(device, self.job.model))
        return cached

    def settle(self, outcome: Outcome) -> float:
        rt, model = self.rt, self.job.model
        for m in outcome.migrations:
            rt.metrics.migrations.labels(m.source, m.target, m.reason).inc()
            rt.metrics.delayed.inc(m.delayed_tokens)
        prompt = outcome.prompt_tokens or self.estimate
        if outcome.prompt_tokens and self.prompt_chars is not None:
            rt.sizes.observe(self.prompt_chars, outcome.prompt_tokens)
        total = 0.0
        for w in outcome.warms:
            tier = tier_of(w.endpoint)
            cost = rt.policy.charge_warm(tier, w.prefilled, rt.energy(w.endpoint, model))
            rt.metrics.warm_tokens.labels(w.endpoint).inc(w.prefilled)
            rt.metrics.cost.labels(tier).inc(cost)
            total += cost
        for share in outcome.shares:
            tier = tier_of(share.endpoint)
            prefill = share.prompt_tokens or prompt + share.resumed
            energy = rt.energy(share.endpoint, model)
            cost = rt.policy.charge(
                tier, prefill - share.resumed, share.generated, share.resumed, energy, min(share.cached, prefill)
            )
            if share.cached:
                rt.metrics.cached.labels(share.endpoint).inc(min(share.cached, prefill))
            rt.metrics.cost.labels(tier).inc(cost)
            total += cost
            if share.ttft_s is not None:
                rt.policy.observe_ttft(model, tier, prefill, share.ttft_s)
        if outcome.finish_reason is not None:
            rt.policy.observe_answer(model, outcome.completion_tokens)
        for tier in ("device", "cloud"):
            rt.metrics.budget_used.labels(tier).set(rt.policy.spend.budget_used(tier))
        if outcome.endpoint is not None:  # an endpoint answered (routes that broke off before are charged above)
            label = self.plan.label if self.plan is not None else "pinned"
            rt.metrics.routes.labels(label, tier_of(outcome.endpoint)).inc()
        return total
