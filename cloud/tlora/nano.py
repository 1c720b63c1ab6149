"""tLoRA's nano-batches (arXiv 2602.07263): a step's samples split into N nano-batches of about
equal LoRA-aware cost, and AIMD on N.  Pure, typed, synchronous: no clocks, no torch.

Cost of a sample: its tokens times the per-token FLOPs of the linear layers it passes through,
relative to the base's: ``1 + rank * sum_targets(in + out) / sum_all_linears(in * out)`` per layer
(:func:`lora_cost_factor`), so a rank-64 job's samples weigh more than a rank-4 job's; a
nano-batch is padded to its longest sample.  :func:`split` cuts the length-sorted samples into
runs (whole samples each) that minimise the costliest nano-batch: balanced work for overlapping
nano-batches, and far less padding than one mixed batch padded to its longest sample.

:class:`NanoBatchAimd` is SYSTEMS.md's rule: after each step, ``N += increase`` if the step's time
per unit of work got faster by at least ``tau`` (relative) than the previous step's, else
``N = max(1, N // 2)``.  The first observation has nothing to compare with, so it probes upward.
"""

from __future__ import annotations

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


def _greedy(lengths: Sequence[int], factors: Sequence[float], order: Sequence[int], cap: float) -> list[list[int]]:
    """Pack length-sorted samples into consecutive chunks of padded cost at most ``cap`` (one
    sample over the cap gets a chunk of its own)."""
    chunks: list[list[int]] = []
    weight = 0.0
    for i in order:
        # chunk cost = its longest (this one, ascending order) x its samples' summed cost factors
        if chunks and lengths[i] * (weight + factors[i]) <= cap * (1 + 1e-12):  # float sums' order
            chunks[-1].append(i)
            weight += factors[i]
        else:
            chunks.append([i])
            weight = factors[i]
    return chunks


def split(lengths: Sequence[int], factors: Sequence[float], n: int) -> tuple[tuple[int, ...], ...]:
    """Partition samples ``0..S-1`` (``lengths[i]`` tokens, per-token cost ``factors[i]``, see
    :func:`lora_cost_factor`) into ``min(n, S)`` non-empty nano-batches.

    Each nano-batch is padded to its longest sample, so its cost is ``max length x sum of
    factors``; the split minimises the largest nano-batch's cost over runs of the samples sorted
    by length (bisection on the cap, greedy packing: a run's cost only grows as it extends, so
    greedy is optimal for a given cap), which also cuts the padding a single mixed batch carries.
    Runs are then halved until there are ``min(n, S)`` (never raising the largest cost).  Indices
    ascend within a nano-batch, so samples ordered by job stay ordered by job; nano-batches are
    listed shortest first.  Attention's quadratic term is left out (short sequences here)."""
    if n < 1:
        raise ValueError(f"nano-batch count must be at least 1 (got {n})")
    if len(lengths) != len(factors):
        raise ValueError(f"{len(lengths)} sample lengths for {len(factors)} cost factors")
    if any(length < 1 for length in lengths) or any(not (math.isfinite(f) and f > 0) for f in factors):
        raise ValueError("sample lengths must be positive and cost factors positive and finite")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    bins = min(n, len(order))
    if bins <= 1:
        return (tuple(range(len(order))),) if bins else ()
    lo = max(lengths[i] * factors[i] for i in order)  # no chunk can cost less than its costliest sample
    hi = lengths[order[-1]] * sum(factors)  # everything in one chunk
    for _ in range(60):
        mid = (lo + hi) / 2
        if len(_greedy(lengths, factors, order, mid)) <= bins:
            hi = mid
        else:
            lo = mid
    chunks = _greedy(lengths, factors, order, hi)
    while len(chunks) < bins:
        k = max(range(len(chunks)), key=lambda c: (len(chunks[c]), -c))
        chunk = chunks.pop(k)
        half = len(chunk) // 2
        chunks[k:k] = [chunk[:half], chunk[half:]]
    return tuple(tuple(sorted(c)) for c in chunks)


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
