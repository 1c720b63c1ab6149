"""tLoRA's nano-batches (arXiv 2602.07263): a step's samples split into N nano-batches of about
equal LoRA-aware cost, and AIMD on N.  Pure, typed, synchronous: no clocks, no torch.

Cost of a sample: its tokens times the per-token FLOPs of the linear layers it passes through,
relative to the base's: ``1 + rank * sum_targets(in + out) / sum_all_linears(in * out)`` per layer
(:func:`lora_cost_factor`), so a rank-64 job's samples weigh more than a rank-4 job's.
:func:`split` balances those costs greedily (longest first onto the lightest nano-batch; each
nano-batch keeps whole samples) and returns each nano-batch's sample indices in ascending order,
so samples of one job stay adjacent when the step's samples are ordered by job.

:class:`NanoBatchAimd` is SYSTEMS.md's rule: after each step, ``N += increase`` if the step's time
per unit of work got faster by at least ``tau`` (relative) than the previous step's, else
``N = max(1, N // 2)``.  The first observation has nothing to compare with, so it probes upward.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeweave.models.config import ModelConfig
from edgeweave.models.lora import TARGETS, LoraConfig, module_shape


def lora_cost_factor(cfg: ModelConfig, lora: LoraConfig) -> float:
    """Per-token linear-layer FLOPs with the adapter over those of the base alone."""
    base = sum(i * o for i, o in (module_shape(cfg, t) for t in TARGETS))
    extra = sum(lora.rank * sum(module_shape(cfg, t)) for t in lora.target_modules)
    return 1.0 + extra / base


def split(costs: Sequence[float], n: int) -> tuple[tuple[int, ...], ...]:
    """Partition sample indices ``0..len(costs)-1`` into ``min(n, len(costs))`` non-empty
    nano-batches of balanced total cost (greedy LPT); indices ascending within each."""
    if n < 1:
        raise ValueError(f"nano-batch count must be at least 1 (got {n})")
    if any(not (math.isfinite(c) and c >= 0) for c in costs):
        raise ValueError("sample costs must be finite and non-negative")
    bins = min(n, len(costs))
    if bins == 0:
        return ()
    heap = [(0.0, b) for b in range(bins)]
    members: list[list[int]] = [[] for _ in range(bins)]
    # ties broken by index so the split is deterministic
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, b = heapq.heappop(heap)
        members[b].append(i)
        heapq.heappush(heap, (load + costs[i], b))
    return tuple(tuple(sorted(m)) for m in sorted(members, key=min))


@dataclass
class NanoBatchAimd:
    """AIMD on the nano-batch count: ``observe(seconds, work)`` after each step -> the next N."""

    n: int = 1
    tau: float = 0.05  # relative speed-up that counts as "faster"
    increase: int = 4
    max_n: int = 64
    _last_rate: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.n <= self.max_n:
            raise ValueError(f"NanoBatchAimd: n must be in [1, max_n={self.max_n}] (got {self.n})")
        if not (math.isfinite(self.tau) and 0 <= self.tau < 1):
            raise ValueError(f"NanoBatchAimd: tau must be in [0, 1) (got {self.tau})")
        if self.increase < 1:
            raise ValueError(f"NanoBatchAimd: increase must be at least 1 (got {self.increase})")

    def observe(self, seconds: float, work: float = 1.0) -> int:
        """Record a step that took ``seconds`` for ``work`` units (samples, tokens; 1 = compare
        raw step times) at the current N; return the N to use next."""
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"step seconds must be positive (got {seconds})")
        if not (math.isfinite(work) and work > 0):
            raise ValueError(f"step work must be positive (got {work})")
        rate = seconds / work
        last, self._last_rate = self._last_rate, rate
        if last is None or rate <= last * (1 - self.tau):
            self.n = min(self.max_n, self.n + self.increase)
        else:
            self.n = max(1, self.n // 2)
        return self.n
