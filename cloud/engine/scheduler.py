"""Which sequences run in the next engine iteration: the pure step scheduler.

The engine describes every live sequence as a :class:`SeqView`; a
:class:`Policy` ranks them (most urgent first) and may veto preemptions;
:func:`schedule` then fills the iteration in rank order under the token
budget (chunked prefill: a prompt may get only part of it), the sequence cap
and the free KV blocks, preempting the lowest-ranked running sequences when
memory runs out (only where the policy agrees: one that refuses leaves the
waiting sequence waiting, and none ranked below it is admitted past it).
No clock is read and nothing is mutated: the same call drives the engine and
any simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from edgeweave.wire.slo import AnySlo

State = Literal["waiting", "running", "swapped"]


@dataclass(frozen=True)
class SeqView:
    id: str
    arrival_s: float
    state: State
    context_tokens: int  # tokens that must be in the KV cache before its next sample
    computed_tokens: int  # tokens already in the cache (cached prefix blocks included)
    generated_tokens: int
    max_tokens: int
    blocks_held: int  # on the device
    blocks_exclusive: int = 0  # of those, the ones no other sequence shares (what preempting it frees)
    prompt_tokens: int = 0
    slo: AnySlo | None = None  # the request's SLO (None: the policy's default)


@dataclass(frozen=True)
class Budget:
    max_tokens: int  # tokens computed per iteration (prefill chunks + decodes)
    max_seqs: int
    free_blocks: int
    block_size: int


@dataclass(frozen=True)
class StepPlan:
    run: list[tuple[str, int]]  # (sequence id, tokens to compute this iteration)
    preempt: list[str]  # running sequences to evict first (lowest rank first)


class Policy(Protocol):
    name: str

    def rank(self, seqs: Sequence[SeqView], now: float) -> list[SeqView]:
        """All of ``seqs``, most urgent first."""
        ...

    def may_preempt(self, victim: SeqView, for_seq: SeqView, now: float) -> bool:
        """Whether ``victim`` (ranked below ``for_seq``) may lose its memory to it."""
        ...


class FCFS:
    """First come, first served (vLLM's default order): earliest arrival first."""

    name = "fcfs"

    def rank(self, seqs: Sequence[SeqView], now: float) -> list[SeqView]:
        return sorted(seqs, key=lambda s: (s.arrival_s, s.id))

    def may_preempt(self, victim: SeqView, for_seq: SeqView, now: float) -> bool:
        return True


def _blocks_needed(v: SeqView, n: int, block_size: int) -> int:
    return -(-(v.computed_tokens + n) // block_size) - v.blocks_held


def schedule(policy: Policy, seqs: Sequence[SeqView], budget: Budget, now: float) -> StepPlan:
    ranked = policy.rank(seqs, now)
    free, tokens = budget.free_blocks, budget.max_tokens
    run: list[tuple[str, int]] = []
    planned: set[str] = set()
    preempt: list[str] = []
    victims = [v for v in reversed(ranked) if v.blocks_held]  # lowest rank first
    admitting = True
    for v in ranked:
        if v.id in preempt or (not admitting and not v.blocks_held):
            continue
        if len(run) >= budget.max_seqs or tokens <= 0:
            break
        n = min(v.context_tokens - v.computed_tokens, tokens)
        need = _blocks_needed(v, n, budget.block_size)
        if need > free and n > 1:  # a prefill chunk: first take what fits
            fit = (v.blocks_held + free) * budget.block_size - v.computed_tokens
            if fit >= 1:
                n, need = fit, _blocks_needed(v, fit, budget.block_size)
        while need > free:
            victim = next((x for x in victims if x.id not in planned and x.id != v.id and x.id not in preempt), None)
            if victim is None or not policy.may_preempt(victim, v, now):
                break
            preempt.append(victim.id)
            free += victim.blocks_exclusive
        if need > free:
            if v.blocks_held:  # it cannot grow: it yields its own memory
                preempt.append(v.id)
                free += v.blocks_exclusive
                continue
            # keep the policy's order (no sequence ranked lower is admitted before it),
            # but those already holding memory go on decoding
            admitting = False
            continue
        free -= need
        tokens -= n
        run.append((v.id, n))
        planned.add(v.id)
    return StepPlan(run, preempt)
