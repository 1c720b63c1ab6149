"""What Circinus plans from (pure data and a pure profiler): each operator configuration's measured
latency, accuracy, cost and tier load, the tiers' capacities and links, and the precision-aware
profiler that takes latency samples only until an estimate decides.

Latency is sampled: a configuration on a tier runs for real (on a device
daemon, the edge or the cloud service) and each run is one *profiling step*.
:class:`Profiler` keeps every sample it has taken (plans that share an
operator choice share its samples: plan similarity at the profiling level)
and answers a plan's latency as an interval: per operator on a path, the
mean +/- a Student-t confidence half-width (``confidence``, two-sided, on its
``n - 1`` degrees of freedom, so a few samples give a wide interval).  :meth:`Profiler.decide` samples the
plan's operators incrementally, widest interval first, and stops as soon as
the interval lies on one side of the SLO (early stopping), or every operator
is known to ``precision`` (relative half-width), or has ``max_samples``.  So
a decision differs from the one full profiling would make only when the
plan's mean latency is within ``precision`` of the SLO (the stated
precision); with ``early_stop=False`` it always takes ``max_samples``.

Accuracy is measured once per configuration on a labelled validation set
(deterministic); a pipeline's accuracy is the product of its operators'
(errors compound); cost is dollars per invocation; ``busy_s`` is the
compute-seconds one invocation takes from its tier, which the selection
charges against the tier's capacity.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from scipy.stats import t as student_t

from coordinator.circinus.spec import PipelineTier

Sampler = Callable[[str, PipelineTier], float]  # (configuration key, tier) -> one measured latency, s


@functools.lru_cache(maxsize=1024)
def _t_quantile(confidence: float, dof: int) -> float:
    return float(student_t.ppf(0.5 + confidence / 2, dof))


@dataclass(frozen=True)
class OpStats:
    """One configuration on one tier, per invocation (latency comes from the profiler)."""

    accuracy: float
    cost_usd: float
    busy_s: float  # compute-seconds taken from the tier
    output_bytes: int  # sent to the next operator


@dataclass(frozen=True)
class Tiers:
    capacity: Mapping[PipelineTier, float]  # compute-seconds per second each tier offers
    rtt_s: Mapping[tuple[PipelineTier, PipelineTier], float]  # one transfer between tiers (0 within one)
    bandwidth: Mapping[tuple[PipelineTier, PipelineTier], float]  # bytes/s
    source: PipelineTier = "device"  # where the input comes from and the answer goes back to

    def hop_s(self, a: PipelineTier, b: PipelineTier, nbytes: int) -> float:
        if a == b:
            return 0.0
        key = (a, b) if (a, b) in self.rtt_s else (b, a)
        return self.rtt_s[key] + nbytes / self.bandwidth[key]


@dataclass
class Profiler:
    sampler: Sampler
    confidence: float = 0.95
    precision: float = 0.05  # relative half-width at which an estimate counts as known
    min_samples: int = 3
    max_samples: int = 20
    early_stop: bool = True
    samples: dict[tuple[str, PipelineTier], list[float]] = field(default_factory=dict)
    _cached: dict[tuple[str, PipelineTier], tuple[int, float, float]] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return sum(len(v) for v in self.samples.values())

    def _take(self, key: str, tier: PipelineTier, n: int) -> list[float]:
        got = self.samples.setdefault((key, tier), [])
        while len(got) < n:
            got.append(self.sampler(key, tier))
        return got

    def estimate(self, key: str, tier: PipelineTier) -> tuple[float, float]:
        """(mean, half-width) from the samples so far (``min_samples`` taken first)."""
        got = self._take(key, tier, self.min_samples)
        n = len(got)
        cached = self._cached.get((key, tier))
        if cached is None or cached[0] != n:
            mean = statistics.fmean(got)
            half = _t_quantile(self.confidence, n - 1) * statistics.stdev(got) / math.sqrt(n) if n > 1 else math.inf
            cached = self._cached[(key, tier)] = (n, mean, half)
        return cached[1], cached[2]

    def known(self, key: str, tier: PipelineTier) -> bool:
        mean, half = self.estimate(key, tier)
        n = len(self.samples[(key, tier)])
        return n >= self.max_samples or half <= self.precision * mean

    def _done(self, part: tuple[str, PipelineTier]) -> bool:
        """No more samples for this part: known (early stopping) or at ``max_samples`` (without)."""
        return self.known(*part) if self.early_stop else len(self.samples[part]) >= self.max_samples

    def decide(self, parts: list[tuple[str, PipelineTier]], fixed_s: float, bound_s: float) -> bool:
        """Whether ``fixed_s`` plus the latencies of ``parts`` (one path's operators) stays within
        ``bound_s``, sampling incrementally until the interval decides."""
        while True:
            est = [self.estimate(k, t) for k, t in parts]
            mean = fixed_s + sum(m for m, _ in est)
            half = sum(h for _, h in est)
            if self.early_stop and (mean + half <= bound_s or mean - half > bound_s):
                return mean <= bound_s
            open_parts = [(h, p) for (_, h), p in zip(est, parts, strict=True) if not self._done(p)]
            if not open_parts:
                return mean <= bound_s
            _, (key, tier) = max(open_parts, key=lambda hp: hp[0])
            self._take(key, tier, len(self.samples[(key, tier)]) + 1)

    def mean(self, key: str, tier: PipelineTier) -> float:
        return self.estimate(key, tier)[0]
