"""tLoRA's step-time model of a group (arXiv 2602.07263): what the scheduler predicts before it
merges a job, and the simulator's clock.

One :meth:`GroupTrainer.step <cloud.tlora.trainer.GroupTrainer.step>` of a group is modelled as

    seconds = fixed + per_job * jobs + per_token * padded_tokens + per_lora_token * lora_tokens

- ``fixed``: the step's own overhead (Python, the forward's graph, kernel launches), paid once
  however many jobs share it: the reason co-location pays on a small base;
- ``per_job``: each member's optimizer step, clipping, schedule and adapter segments;
- ``padded_tokens``: the base's forward and backward run over every sample of every member,
  right-padded to the step's widest sample (``sum(batch) * max(width)``);
- ``lora_tokens``: each member's adapter work, its padded tokens times its adapter's per-token
  FLOPs relative to the base's (:func:`cloud.tlora.nano.lora_cost_factor` - 1, proportional to
  the rank and the adapted layers' widths).

The four terms are fitted by non-negative least squares on MEASURED steps of real
:class:`GroupTrainer` groups of varied size and rank (:func:`measure`, :func:`fit`), on the
machine that runs them; nothing is assumed about the hardware.  From the model: a group's
throughput (samples/s) and each member's slowdown, its step time in the group over its step time
alone (each member takes one optimizer step per group step, so the ratio of step times is the
ratio of its training speeds).  The paper is silent on its cost model's form; this is ours.
"""

from __future__ import annotations

import copy
import itertools
import math
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from cloud.tlora.jobs import JobPlan
from cloud.tlora.nano import lora_cost_factor
from edgeweave.models.config import ModelConfig
from edgeweave.models.lora import LoraConfig

WIDTH_QUANTILE = 0.9  # a step's batch is padded to its widest sample: a job's width is a high quantile


@dataclass(frozen=True)
class JobShape:
    """What the scheduler and the cost model know of a job (no tensors, no examples)."""

    job_id: str
    rank: int
    batch_size: int
    width: int  # tokens of a padded sample of this job (WIDTH_QUANTILE of its examples' lengths)
    lora_factor: float  # adapter FLOPs per token over the base's (nano.lora_cost_factor - 1)
    total_steps: int
    slowdown_bound: float = 1.5

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.width < 1 or self.total_steps < 1 or self.rank < 1:
            raise ValueError(f"JobShape {self.job_id!r}: rank, batch_size, width and total_steps must be positive")
        if not (math.isfinite(self.slowdown_bound) and self.slowdown_bound >= 1.0):
            raise ValueError(f"JobShape {self.job_id!r}: slowdown_bound must be at least 1 (got {self.slowdown_bound})")

    @property
    def tokens_per_step(self) -> int:
        """The job's share of a step's activations (the capacity check counts these)."""
        return self.batch_size * self.width


def lora_factor(cfg: ModelConfig, lora: LoraConfig) -> float:
    return lora_cost_factor(cfg, lora) - 1.0


def shape_of(plan: JobPlan, cfg: ModelConfig) -> JobShape:
    """A :class:`~cloud.tlora.jobs.JobPlan`'s shape: its samples' token widths as the trainer
    encodes them (:func:`edgeweave.models.train.encode_example`), capped at the context."""
    from edgeweave.models.tokenizer import ByteTokenizer
    from edgeweave.models.train import encode_example

    tok = ByteTokenizer()
    lengths = sorted(min(cfg.max_seq_len, len(encode_example(tok, ex)[0])) for ex in plan.examples)
    width = lengths[min(len(lengths) - 1, int(WIDTH_QUANTILE * len(lengths)))]
    return JobShape(
        plan.job_id,
        plan.lora.rank,
        plan.batch_size,
        width,
        lora_factor(cfg, plan.lora),
        plan.total_steps,
        plan.slowdown_bound,
    )


def features(members: Sequence[JobShape]) -> tuple[float, float, float, float]:
    """The model's regressors of one step of ``members``: 1, jobs, padded tokens, LoRA tokens."""
    if not members:
        return (0.0, 0.0, 0.0, 0.0)
    width = max(m.width for m in members)
    padded = sum(m.batch_size for m in members) * width
    lora = sum(m.batch_size * width * m.lora_factor for m in members)
    return (1.0, float(len(members)), float(padded), float(lora))


@dataclass(frozen=True)
class StepCost:
    """Seconds of one group step (see the module docstring); fitted, never assumed."""

    fixed_s: float
    per_job_s: float
    per_token_s: float
    per_lora_token_s: float

    def step_s(self, members: Sequence[JobShape]) -> float:
        one, jobs, padded, lora = features(members)
        return self.fixed_s * one + self.per_job_s * jobs + self.per_token_s * padded + self.per_lora_token_s * lora

    def alone_s(self, job: JobShape) -> float:
        return self.step_s((job,))

    def throughput(self, members: Sequence[JobShape]) -> float:
        """Samples per second the group trains (0 for an empty group)."""
        return sum(m.batch_size for m in members) / self.step_s(members) if members else 0.0

    def slowdown(self, job: JobShape, members: Sequence[JobShape]) -> float:
        """``job``'s step time in ``members`` over its step time alone (>= 1 for any fitted model)."""
        return self.step_s(members) / self.alone_s(job)

    def describe(self) -> str:
        return (
            f"{self.fixed_s * 1e3:.1f} ms/step + {self.per_job_s * 1e3:.1f} ms/job"
            f" + {self.per_token_s * 1e6:.2f} us/token + {self.per_lora_token_s * 1e6:.2f} us/LoRA-token"
        )


@dataclass(frozen=True)
class StepSample:
    """One measured group step: who was in it and how long it took."""

    members: tuple[JobShape, ...]
    seconds: float


def _nnls_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    w = 1.0 / y  # relative errors: a few long steps must not dominate
    return nnls(x * w[:, None], y * w)[0]


def fit(samples: Sequence[StepSample]) -> tuple[StepCost, float]:
    """Non-negative least squares of the four terms on measured steps, weighted by 1/seconds
    (the scheduler uses ratios, so relative errors count), refitted without the steps more than
    5 robust standard deviations off in relative residual (a shared machine's stalls); returns
    the model and its R^2 on the steps kept."""
    if len(samples) < 4:
        raise ValueError(f"need at least 4 measured steps to fit the step-time model, got {len(samples)}")
    x = np.asarray([features(s.members) for s in samples])
    y = np.asarray([s.seconds for s in samples])
    if not (np.isfinite(y).all() and (y > 0).all()):
        raise ValueError("measured step times must be positive and finite")
    rel = (y - x @ _nnls_fit(x, y)) / y
    sigma = 1.4826 * float(np.median(np.abs(rel - np.median(rel))))
    keep = np.abs(rel - np.median(rel)) <= 5 * sigma if sigma > 0 else np.ones(len(y), dtype=bool)
    x, y = x[keep], y[keep]
    coef = _nnls_fit(x, y)
    r2 = 1.0 - float(((y - x @ coef) ** 2).sum()) / max(float(((y - y.mean()) ** 2).sum()), 1e-18)
    cost = StepCost(*(float(c) for c in coef))
    if cost.fixed_s + cost.per_job_s + cost.per_token_s <= 0:  # a step would cost nothing: no model
        raise ValueError("fitted step-time model predicts free steps: measure more varied groups")
    return cost, r2


def measure(
    base_dir: str, plans: Sequence[JobPlan], groups: Iterable[Sequence[int]], steps: int = 3
) -> list[StepSample]:
    """One sample per group of ``plans`` (indices into ``plans``): the median of ``steps`` real
    GroupTrainer steps after one warm-up step, on this machine, with the threads torch has now
    (the median drops a shared machine's stalls)."""
    from cloud.tlora.solo import load_base
    from cloud.tlora.trainer import GroupTrainer

    samples: list[StepSample] = []
    loaded = load_base(plans[0].base_model)
    for idx in groups:
        members = [plans[i] for i in idx]
        base = copy.deepcopy(loaded)  # a SuperModel wraps its base: a fresh one per group
        trainer = GroupTrainer(base)
        for p in members:
            trainer.add(p)
        shapes = tuple(shape_of(p, base.config) for p in members)
        trainer.step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            trainer.step()
            times.append(time.perf_counter() - start)
        samples.append(StepSample(shapes, statistics.median(times)))
    return samples


def profile_groups(n_plans: int, max_group: int) -> list[tuple[int, ...]]:
    """Which groups :func:`measure` times: every single job, then prefixes and strided subsets
    of growing size, so jobs count, tokens and ranks vary independently enough to separate."""
    singles = [(i,) for i in range(n_plans)]
    grown = [tuple(range(k)) for k in range(2, min(max_group, n_plans) + 1)]
    strided = [tuple(c) for c in itertools.islice(itertools.combinations(range(n_plans), 2), 0, n_plans, 2)]
    return singles + grown + strided
