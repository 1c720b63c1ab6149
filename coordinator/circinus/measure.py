"""Circinus's catalog, measured: every operator configuration a workload names is loaded and run for
real (:mod:`edgeweave.operators.runtime`), its accuracy measured on its validation set, and its latency
sampled by running it, one run per profiling step.

By default the operators run on this machine and a tier is a stated slowdown
of it (``TierSpec.factor``: a phone slower, a cloud GPU faster) billed per
busy second (``usd_per_s``); given a live tier runner, every latency sample
is a run on the tier itself.
What an operator hands on (``OpStats.output_bytes``) is the frame for a
detector (a frame with someone in it goes on), a label for a classifier, the
text for an LLM.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from coordinator.circinus.planner import Catalog
from coordinator.circinus.profiles import OpStats, Sampler, Tiers
from coordinator.circinus.spec import Infrastructure, PipelineTier, Workload
from edgeweave.models.vision import DETECT_CLASSES, frames
from edgeweave.operators.runtime import FRAME_SIZE, LLMOp, VisionOp, load_operator

PROMPT = "dim the kitchen lights to 30% and lock the front door"
FRAME_BYTES = 3 * FRAME_SIZE * FRAME_SIZE  # uint8 on the wire
LABEL_BYTES = 16
TEXT_BYTES = 256


@dataclass(frozen=True)
class TierSpec:
    factor: float  # its time for what takes 1 s on this machine
    usd_per_s: float  # billed per busy second


def from_infrastructure(infra: Infrastructure) -> tuple[Tiers, dict[PipelineTier, TierSpec]]:
    """The planner's view of a spec's ``infrastructure`` block, and the tiers' speeds and prices."""
    tiers = Tiers(
        {t: m.capacity for t, m in infra.tiers.items()},
        {link.between: link.rtt_ms / 1000 for link in infra.links},
        {link.between: link.mbit * 1e6 / 8 for link in infra.links},
        infra.source,
    )
    return tiers, {t: TierSpec(m.factor, m.usd_per_hour / 3600) for t, m in infra.tiers.items()}


@dataclass
class Measured:
    catalog: Catalog
    sampler: Sampler
    accuracy: dict[str, float]  # per model
    seconds: float  # loading and measuring accuracy (not profiling)


def _runner(op: VisionOp | LLMOp) -> tuple[Callable[[], object], int]:
    if isinstance(op, VisionOp):
        frame = frames(1, 3, FRAME_SIZE)[0].numpy().astype(np.float32)
        out = FRAME_BYTES if op.config.classes == DETECT_CLASSES else LABEL_BYTES
        return (lambda: op(frame)), out
    return (lambda: op(PROMPT)), TEXT_BYTES


TierRunner = Callable[[str, PipelineTier], float]  # (model, tier) -> seconds one run took on that tier


def measure(
    workload: Workload,
    tiers: Mapping[PipelineTier, TierSpec],
    calibration_runs: int = 5,
    on_tiers: TierRunner | None = None,
) -> Measured:
    """The catalog and a sampler.  Without ``on_tiers`` every run is on this machine, scaled by the
    tier's factor; with it (the live executor's :meth:`coordinator.circinus.executor.Executor.time`)
    every latency sample and the tier load come from running the operator on the tier itself, as the
    tier timed it.  Accuracy is measured here either way (it does not depend on where a model runs)."""
    t0 = time.perf_counter()
    runs: dict[str, Callable[[], object]] = {}
    accuracy: dict[str, float] = {}
    out_bytes: dict[str, int] = {}
    model_of = {cfg.key: cfg.model for p in workload.pipelines for op in p.operators for cfg in op.configs}

    def sample(key: str, tier: PipelineTier) -> float:
        if on_tiers is not None:
            return on_tiers(model_of[key], tier)
        return _timed(runs[model_of[key]]) * tiers[tier].factor

    catalog: dict[tuple[str, PipelineTier], OpStats] = {}
    for pipeline in workload.pipelines:
        for op in pipeline.operators:
            for cfg in op.configs:
                if cfg.model not in runs:
                    loaded = load_operator(cfg.model)
                    runs[cfg.model], out_bytes[cfg.model] = _runner(loaded)
                    accuracy[cfg.model] = loaded.accuracy()
                for tier in (t for t in op.tiers if t in tiers):  # a tier the infrastructure lacks: not there
                    if (cfg.key, tier) in catalog:
                        continue
                    seconds = statistics.median(sample(cfg.key, tier) for _ in range(calibration_runs))
                    catalog[(cfg.key, tier)] = OpStats(
                        accuracy[cfg.model], seconds * tiers[tier].usd_per_s, seconds, out_bytes[cfg.model]
                    )
    return Measured(catalog, sample, accuracy, time.perf_counter() - t0)


def _timed(run: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0
