"""A tLoRA fine-tuning job's plan and the three things every path derives from it alone: which
examples step ``s`` trains on, the learning rate at step ``s``, and how many steps epochs take.

tLoRA (arXiv 2602.07263) trains many jobs together yet promises each the trajectory it would have
alone.  That only holds if a job's data order and schedule are functions of the job, never of the
group it happens to sit in, so they live here as pure functions of ``(plan, step)``:

- :func:`batch_at`: the examples are read in epochs, each epoch a permutation drawn from a
  ``torch.Generator`` seeded by ``(seed, epoch)``; step ``s`` takes stream positions
  ``s*B .. s*B+B-1`` (a batch may straddle two epochs).  Nothing is carried from step to step, so a
  job resumed on another worker from its step number alone reads the same batches.
- :func:`lr_at`: linear warm-up from ``lr/(W+1)`` to ``lr`` over ``W = warmup_steps`` steps, then
  cosine decay to ``FLOOR * lr`` at the last step (Hugging Face's ``cosine`` schedule, with a floor
  so the last steps still move the adapter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from edgeweave.data.smarthome import Example
from edgeweave.models.lora import LoraConfig

FLOOR = 0.1  # the cosine schedule's final learning rate, as a fraction of the peak


@dataclass(frozen=True)
class JobPlan:
    """Everything that determines a job's training run (and so its result)."""

    job_id: str
    base_model: str  # model name or checkpoint dir
    lora: LoraConfig
    batch_size: int
    learning_rate: float
    total_steps: int
    warmup_steps: int
    seed: int
    examples: tuple[Example, ...]
    slowdown_bound: float = 1.5  # step time in a group over step time alone, at most

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"JobPlan {self.job_id!r}: {name} {why}")

        if not self.job_id:
            raise bad("job_id", "must not be empty")
        if not isinstance(self.lora, LoraConfig):
            raise bad("lora", f"must be a LoraConfig (got {type(self.lora).__name__})")
        if self.batch_size < 1:
            raise bad("batch_size", f"must be at least 1 (got {self.batch_size})")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise bad("learning_rate", f"must be a positive finite number (got {self.learning_rate})")
        if self.total_steps < 1:
            raise bad("total_steps", f"must be at least 1 (got {self.total_steps})")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise bad(
                "warmup_steps", f"must be in [0, total_steps] (got {self.warmup_steps}, total_steps {self.total_steps})"
            )
        if self.seed < 0:
            raise bad("seed", f"must be non-negative (got {self.seed})")
        if not self.examples:
            raise bad("examples", "must not be empty")
        if not (math.isfinite(self.slowdown_bound) and self.slowdown_bound >= 1.0):
            raise bad("slowdown_bound", f"must be at least 1.0 (got {self.slowdown_bound})")


def _check_step(plan: JobPlan, step: int) -> None:
    if not 0 <= step < plan.total_steps:
        raise ValueError(f"job {plan.job_id!r}: step {step} outside [0, {plan.total_steps})")


@lru_cache(maxsize=256)
def _epoch_order(seed: int, epoch: int, n: int) -> tuple[int, ...]:
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return tuple(torch.randperm(n, generator=gen).tolist())


def batch_at(plan: JobPlan, step: int) -> list[Example]:
    """The ``batch_size`` examples of step ``step`` (deterministic in ``(seed, step)``)."""
    _check_step(plan, step)
    n = len(plan.examples)
    out = []
    for pos in range(step * plan.batch_size, (step + 1) * plan.batch_size):
        epoch, i = divmod(pos, n)
        out.append(plan.examples[_epoch_order(plan.seed, epoch, n)[i]])
    return out


def lr_at(plan: JobPlan, step: int) -> float:
    """The learning rate of step ``step``: linear warm-up, then cosine decay to ``FLOOR * lr``."""
    _check_step(plan, step)
    peak, warm = plan.learning_rate, plan.warmup_steps
    if step < warm:
        return peak * (step + 1) / (warm + 1)
    decay_steps = plan.total_steps - warm - 1
    progress = (step - warm) / decay_steps if decay_steps > 0 else 0.0
    return peak * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


def steps_for_epochs(n_examples: int, batch_size: int, epochs: float) -> int:
    """Optimizer steps to read ``epochs`` passes over ``n_examples`` in batches of ``batch_size``."""
    if n_examples < 1:
        raise ValueError(f"n_examples must be at least 1 (got {n_examples})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
    if not (math.isfinite(epochs) and epochs > 0):
        raise ValueError(f"epochs must be a positive finite number (got {epochs})")
    return max(1, math.ceil(n_examples * epochs / batch_size))
