"""The escalation policy at the coordinator: the glue between a gate and the live answers it chooses between.

With ``[coordinator] policy = "escalation"`` (or a request's ``prefer: "escalate"``) an answer runs
as the configured gate decides: a router may send it to the cloud at once; otherwise the device
answers in full (buffered, with the uncertainty score the gate asks for, computed on the device)
and, if the gate escalates, the cloud answers again and that answer is the one sent.  The
``token-entropy`` gate instead streams from the device and moves mid-answer
(:mod:`coordinator.escalation.token_entropy`).  Each single-tier answer is a DiSCo answer with
that tier preferred (failures still move it), so the mechanisms are the coordinator's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace

from coordinator.cluster.metrics import CoordinatorMetrics
from coordinator.disco.runtime import DiscoRuntime
from coordinator.escalation.baselines import AlwaysCloud, AlwaysDevice, LengthRouter, RandomGate
from coordinator.escalation.policy import DeviceAnswer, EscalationPolicy, Question, UncertaintyGate
from coordinator.escalation.token_entropy import TokenEntropyController
from coordinator.streaming.answer import live_answer
from coordinator.streaming.dispatch import Dispatcher
from coordinator.streaming.routes import Job
from edgeweave.config import EscalationConfig
from edgeweave.serving.http_errors import ApiError
from edgeweave.serving.openai_serving import Answer, Delta


def make_policy(cfg: EscalationConfig) -> EscalationPolicy:
    match cfg.gate:
        case "uncertainty":
            return UncertaintyGate(cfg.uncertainty, cfg.threshold)
        case "length":
            return LengthRouter(cfg.max_prompt_chars)
        case "random":
            return RandomGate(cfg.rate, cfg.seed)
        case "always-cloud":
            return AlwaysCloud()
        case _:  # always-device; token-entropy decides per token, starting on the device
            return AlwaysDevice()


@dataclass
class Decision:
    """What the escalation did with one answer (filled when its context is entered)."""

    outcome: str = ""  # "kept" (the device's answer), "escalated", "routed" (cloud at once), "moved" (per token)
    score: float | None = None  # the gate's score of the device's answer


class Replay(Answer):
    """A finished answer, sent again from its recorded deltas."""

    def __init__(self, source: Answer, deltas: list[Delta]) -> None:
        super().__init__(source.endpoint, source.prompt_tokens, source.completion_tokens, source.finish_reason)
        self.cost_usd, self.uncertainty = source.cost_usd, source.uncertainty
        self._deltas = deltas

    async def deltas(self) -> AsyncIterator[Delta]:
        for d in self._deltas:
            yield d


class Stripped(Answer):
    """An answer whose logprobs were asked for the controller, not the client: relayed without them."""

    def __init__(self, inner: Answer) -> None:
        super().__init__(inner.endpoint)
        self._inner = inner

    async def deltas(self) -> AsyncIterator[Delta]:
        async for d in self._inner.deltas():
            yield replace(d, logprob=None)
        i = self._inner
        self.endpoint, self.prompt_tokens, self.completion_tokens = i.endpoint, i.prompt_tokens, i.completion_tokens
        self.finish_reason, self.cost_usd, self.uncertainty = i.finish_reason, i.cost_usd, i.uncertainty


class EscalationRuntime:
    def __init__(
        self, cfg: EscalationConfig, disco: DiscoRuntime, dispatcher: Dispatcher, metrics: CoordinatorMetrics
    ) -> None:
        self.cfg = cfg
        self.policy = make_policy(cfg)
        self.disco = disco
        self.dispatcher = dispatcher
        self.metrics = metrics

    def answer(self, job: Job, prompt_chars: int | None) -> tuple[Decision, AbstractAsyncContextManager[Answer]]:
        decision = Decision()
        if job.pin is not None:
            raise ApiError(400, "prefer: escalation chooses the endpoint itself; do not pin one", param="prefer")
        if self.cfg.gate == "token-entropy":
            return decision, self._per_token(job, decision)
        return decision, self._gated(job, prompt_chars, decision)

    def _count(self, decision: Decision) -> None:
        self.metrics.escalations.labels(self.policy.name if self.cfg.gate != "token-entropy" else "token-entropy",
                                        decision.outcome).inc()  # fmt: skip

    @asynccontextmanager
    async def _gated(self, job: Job, prompt_chars: int | None, decision: Decision) -> AsyncIterator[Answer]:
        question = Question(prompt_chars or 0, None if prompt_chars is not None else len(job.prompt or ()))
        async with AsyncExitStack() as stack:
            if self.policy.route(question) == "cloud":
                decision.outcome = "routed"
                self._count(decision)
                yield await stack.enter_async_context(self.disco.answer(job, prompt_chars, "cloud", None)[1])
                return
            wanted = self.policy.wants_score()
            device_job = replace(job, uncertainty=wanted or job.uncertainty)
            async with self.disco.answer(device_job, prompt_chars, "device", None)[1] as device:
                deltas = [d async for d in device.deltas()]
            score = device.uncertainty.score if wanted is not None and device.uncertainty is not None else None
            decision.score = score
            kept = DeviceAnswer(question, device.completion_tokens, score, device.finish_reason)
            if not self.policy.escalate(kept):
                decision.outcome = "kept"
                self._count(decision)
                yield Replay(device, deltas)
                return
            decision.outcome = "escalated"
            self._count(decision)
            yield await stack.enter_async_context(self.disco.answer(job, prompt_chars, "cloud", None)[1])

    @asynccontextmanager
    async def _per_token(self, job: Job, decision: Decision) -> AsyncIterator[Answer]:
        cloud = self.dispatcher.best(job.model, "cloud")
        if cloud is None:
            raise ApiError(503, f"token-entropy escalation: no cloud endpoint serves {job.model}", code="no_endpoint")
        controller = TokenEntropyController(cloud.endpoint, self.cfg.token_entropy_threshold, self.cfg.window)
        asked = job.sampling.logprobs
        top = max(asked or 0, self.cfg.top_logprobs)
        watched = replace(job, tiers=("device",), sampling=job.sampling.model_copy(update={"logprobs": top}))
        async with live_answer(watched, self.dispatcher.open, controller, self.dispatcher.prefill) as answer:
            yield answer if asked is not None else Stripped(answer)
        decision.outcome = "moved" if controller.moved_at is not None else "kept"
        self._count(decision)
