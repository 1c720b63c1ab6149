"""DiSCo in the live coordinator: each chat answer opened as the policy plans, moved when it
pays, and accounted for.

:class:`DiscoRuntime` joins the pure :class:`~coordinator.disco.policy.DiscoPolicy`
to the dispatcher and the streaming mechanism.  The prompt's token count is
not known before an endpoint tokenizes it, so plans use an estimate (text
length over the characters per token measured on earlier answers); the exact
count is what is accounted.  When an answer ends, every endpoint that worked
on it (race losers and migration sources included) is charged for the prompt
it prefilled and the tokens it generated; its TTFT feeds the profiles.
"""

from __future__ import annotations

import logging
import math

from coordinator.cluster.metrics import CoordinatorMetrics
from coordinator.cluster.placement import Tier
from coordinator.disco.cost import DeviceEnergy
from coordinator.disco.migration import other
from coordinator.disco.policy import DiscoPolicy, Plan, Prefer
from coordinator.disco.stream import MigratingAnswer, Migration, Reason
from coordinator.streaming.dispatch import Dispatcher
from coordinator.streaming.routes import Job

log = logging.getLogger("edgeweave.disco")
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

    def answer(self, job: Job, prompt_chars: int | None, prefer: Prefer, forced_after: int | None) -> Served:
        """A not yet started answer for ``job`` and the plan to start it with.  ``prompt_chars`` is
        None when the prompt came as token ids (then its length is exact)."""
        estimate = self.sizes.estimate(prompt_chars) if prompt_chars is not None else len(job.prompt or ())
        tiers = self.dispatcher.tiers(job.model)
        plan = self.policy.plan(job.model, estimate, tiers, prefer) if tiers and job.pin is None else None
        return Served(self, job, plan, estimate, prompt_chars, forced_after)

    def energy(self, endpoint: str, model: str) -> DeviceEnergy | None:
        """The measured energy of the device at ``endpoint`` (None for the cloud or before it measured)."""
        if tier_of(endpoint) != "device":
            return None
        rec = self.dispatcher.registry.devices.get(endpoint.split(":", 1)[1])
        return rec.energy(model) if rec is not None else None


class Served:
    """One answer under DiSCo: its migrations decided, its cost settled when it closes."""

    def __init__(
        self,
        rt: DiscoRuntime,
        job: Job,
        plan: Plan | None,
        estimate: int,
        prompt_chars: int | None,
        forced_after: int | None,
    ) -> None:
        self.rt = rt
        self.job = job
        self.plan = plan
        self.estimate = estimate
        self.prompt_chars = prompt_chars
        self.forced_after = forced_after
        d = rt.dispatcher
        self.answer = MigratingAnswer(
            job, d.open, self._decide, lambda e: d.fallback(job.model, e), rt.policy.cfg.stall_s,
            self._migrated, self._settle,
        )  # fmt: skip

    def _decide(self, source: str, sent: int, since_first_s: float) -> tuple[str, Reason] | None:
        d, model = self.rt.dispatcher, self.job.model
        if sent == self.forced_after:
            target = d.fallback(model, source)
            return (target, "forced") if target else None
        if self.job.pin is not None:
            return None
        here = tier_of(source)
        there = d.best(model, other(here))
        if there is None:
            return None
        target_tok_s = there.decode_tok_s if there.tier == "device" else math.inf
        energy = self.rt.energy(there.endpoint if there.tier == "device" else source, model)  # the device involved
        prompt = self.answer.prompt_tokens or self.estimate
        ok = self.rt.policy.should_migrate(
            model, here, prompt, sent, since_first_s, self.job.sampling.max_tokens, target_tok_s, energy
        )
        return (there.endpoint, "cost") if ok else None

    def _migrated(self, m: Migration) -> None:
        log.info("answer moved %s -> %s after %d tokens (%s, %d delayed, %.3f s)", m.source, m.target,
                 m.at_token, m.reason, m.delayed_tokens, m.seconds)  # fmt: skip
        self.rt.metrics.migrations.labels(m.source, m.target, m.reason).inc()
        self.rt.metrics.delayed.inc(m.delayed_tokens)

    def _settle(self, answer: MigratingAnswer) -> float:
        rt, model = self.rt, self.job.model
        prompt = answer.prompt_tokens or self.estimate
        if answer.prompt_tokens and self.prompt_chars is not None:
            rt.sizes.observe(self.prompt_chars, answer.prompt_tokens)
        total = 0.0
        for leg in answer.legs:
            tier = tier_of(leg.endpoint)
            resumed = len(leg.job.resume_tokens) - len(self.job.resume_tokens)
            prefill = leg.route.prompt_tokens or prompt + resumed
            cost = rt.policy.charge(tier, prefill - resumed, leg.generated, resumed, rt.energy(leg.endpoint, model))
            rt.metrics.cost.labels(tier).inc(cost)
            total += cost
            if leg.ttft_s is not None:
                rt.policy.observe_ttft(model, tier, prefill, leg.ttft_s)
        if answer.finish_reason is not None:
            rt.policy.observe_answer(model, answer.completion_tokens)
        for tier in ("device", "cloud"):
            rt.metrics.budget_used.labels(tier).set(rt.policy.spend.budget_used(tier))
        if answer.legs:
            label = self.plan.label if self.plan is not None else "pinned"
            rt.metrics.routes.labels(label, tier_of(answer.endpoint)).inc()
        return total
