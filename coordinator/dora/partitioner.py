"""Dora's partitioner (pure): hybrid data x pipeline plans over heterogeneous devices and their
predicted latency, throughput and energy in closed form (:mod:`coordinator.dora.planner` re-scores
them with the contention-aware schedule and keeps the Pareto set that meets the QoE).

A plan is ``p`` data-parallel pipelines, each a chain of devices holding
contiguous layer ranges, the batch split between pipelines in proportion to
their speed, run with ``M`` micro-batches.  Candidates: devices ranked by
speed and, separately, by energy per sample; the first ``n`` of a ranking,
dealt round-robin into ``p`` pipelines; each chain cut by dynamic programming
(the slowest stage as fast as possible within every device's memory); every
micro-batch count in ``MICRO_BATCHES``.  That is O(devices^2 * pipelines *
micro-batch counts) cuts of O(devices * layers^2) each.

Cost model, one batch (:func:`estimate`):

- a stage's time per micro-batch: its samples times its device's per-sample
  time over its layers (forward; backward too in training);
- a transfer between stages: latency plus the larger of its two crossings of
  the access point (``2 * bytes / shared``) and either device's own link;
- the access point is one medium: every transfer of every pipeline queues on
  it, so in each micro-batch round it is busy for the sum of their crossings;
- a pipeline's latency: fill (its stages and transfers in turn) plus
  ``M - 1`` times its bottleneck (its slowest stage or transfer, or the
  medium); in training the backward pass follows the same way, the same bytes
  flowing back as gradients, then a ring all-reduce of the weights across the
  ``p`` pipelines (``4 (p - 1)`` times the weights cross the access point);
- throughput: inference streams batches (the busiest device or the medium
  sets the pace); a training step ends before the next starts;
- energy: busy watts times each device's compute time, plus idle watts times
  the batch's latency for every device taking part (radio energy is not
  modelled).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, Workload

MICRO_BATCHES = (1, 2, 4, 8)
MAX_PIPELINES = 4


@dataclass(frozen=True)
class Stage:
    device: str
    start: int
    end: int  # exclusive


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[Stage, ...]
    samples: int  # its part of the batch


@dataclass(frozen=True)
class Plan:
    pipelines: tuple[Pipeline, ...]
    micro_batches: int

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(s.device for p in self.pipelines for s in p.stages)


@dataclass(frozen=True)
class Estimate:
    latency_s: float
    throughput: float  # samples/s
    energy_j: float  # per batch

    def dominates(self, other: Estimate) -> bool:
        no_worse = (
            self.latency_s <= other.latency_s
            and self.energy_j <= other.energy_j
            and self.throughput >= other.throughput
        )
        return no_worse and self != other


def stage_memory(model: ModelProfile, start: int, end: int, samples: int, training: bool) -> int:
    """Weights, plus in training the activations of every sample kept for the backward pass."""
    weights = sum(model.weight_bytes[start:end])
    return weights + (samples * sum(model.activation_bytes[start:end]) if training else 0)


def estimate(
    plan: Plan, model: ModelProfile, devices: Mapping[str, DeviceProfile], net: Network, work: Workload
) -> Estimate:
    m_count = plan.micro_batches
    fwd: list[list[float]] = []
    bwd: list[list[float]] = []
    xfer: list[list[float]] = []
    medium = 0.0  # access point busy per micro-batch round, every pipeline's transfers
    for pipe in plan.pipelines:
        m = pipe.samples / m_count
        fwd.append([m * sum(devices[s.device].forward_s[s.start : s.end]) for s in pipe.stages])
        bwd.append([m * sum(devices[s.device].backward_s[s.start : s.end]) for s in pipe.stages])
        hops = []
        for a, b in zip(pipe.stages, pipe.stages[1:], strict=False):
            size = m * model.activation_bytes[a.end - 1]
            crossing = 2 * size / net.shared_bytes_s
            medium += crossing
            links = size / min(devices[a.device].link_bytes_s, devices[b.device].link_bytes_s)
            hops.append(net.latency_s + max(crossing, links))
        xfer.append(hops)

    def run(stage_s: list[float], hops: list[float]) -> float:
        slowest = max([*stage_s, *hops, medium])
        return sum(stage_s) + sum(hops) + (m_count - 1) * slowest

    latency = 0.0
    for f, b, h in zip(fwd, bwd, xfer, strict=True):
        latency = max(latency, run(f, h) + (run(b, h) if work.training else 0.0))
    p = len(plan.pipelines)
    if work.training and p > 1:
        latency += 4 * (p - 1) * sum(model.weight_bytes) / net.shared_bytes_s + 2 * (p - 1) * net.latency_s
    busy = {s.device: 0.0 for pipe in plan.pipelines for s in pipe.stages}
    for pipe, f, b in zip(plan.pipelines, fwd, bwd, strict=True):
        for s, fs, bs in zip(pipe.stages, f, b, strict=True):
            busy[s.device] += m_count * (fs + (bs if work.training else 0.0))
    if work.training:
        throughput = work.batch / latency
    else:
        throughput = work.batch / max(*busy.values(), m_count * medium)
    energy = sum(devices[d].busy_w * t + devices[d].idle_w * latency for d, t in busy.items())
    return Estimate(latency, throughput, energy)


def cut(model: ModelProfile, chain: Sequence[DeviceProfile], samples: int, training: bool) -> tuple[Stage, ...] | None:
    """Contiguous layer ranges for ``chain`` in order, at least one layer each, making the slowest
    stage's per-sample time as small as possible within every device's memory; None if none fits."""
    n_layers, k = model.layers, len(chain)
    if k > n_layers:
        return None
    best = [[math.inf] * (n_layers + 1) for _ in range(k + 1)]
    back = [[0] * (n_layers + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for j, dev in enumerate(chain, start=1):
        for i in range(j, n_layers - (k - j) + 1):
            for h in range(j - 1, i):
                if best[j - 1][h] == math.inf:
                    continue
                if stage_memory(model, h, i, samples, training) > dev.memory_bytes:
                    continue
                value = max(best[j - 1][h], dev.compute_s(h, i, training))
                if value < best[j][i]:
                    best[j][i], back[j][i] = value, h
    if best[k][n_layers] == math.inf:
        return None
    stages: list[Stage] = []
    end = n_layers
    for j in range(k, 0, -1):
        start = back[j][end]
        stages.append(Stage(chain[j - 1].name, start, end))
        end = start
    return tuple(reversed(stages))


def _split(batch: int, speeds: Sequence[float]) -> list[int] | None:
    """``batch`` samples in proportion to ``speeds``, at least one each (largest remainders)."""
    if batch < len(speeds):
        return None
    raw = [batch * s / sum(speeds) for s in speeds]
    parts = [max(1, int(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    i = 0
    while sum(parts) < batch:
        parts[order[i % len(order)]] += 1
        i += 1
    while sum(parts) > batch:
        j = max(range(len(parts)), key=lambda x: parts[x])
        parts[j] -= 1
    return parts


def candidates(model: ModelProfile, devices: Sequence[DeviceProfile], work: Workload) -> Iterator[Plan]:
    everything = (0, model.layers)

    def per_sample(d: DeviceProfile) -> float:
        return d.compute_s(*everything, work.training)

    rankings = {
        tuple(sorted(devices, key=lambda d: (per_sample(d), d.name))),
        tuple(sorted(devices, key=lambda d: (d.busy_w * per_sample(d), d.name))),
    }
    seen: set[Plan] = set()
    for ranking in rankings:
        for n in range(1, len(ranking) + 1):
            chosen = ranking[:n]
            for p in range(1, min(n, MAX_PIPELINES, work.batch) + 1):
                groups = [chosen[i::p] for i in range(p)]
                unlimited = [cut(model, g, 0, False) for g in groups]  # speed first, memory next
                if any(c is None for c in unlimited):
                    continue
                speeds = [
                    1.0 / max(d.compute_s(s.start, s.end, work.training) for d, s in zip(g, c, strict=True))  # type: ignore[arg-type]
                    for g, c in zip(groups, unlimited, strict=True)
                ]
                shares = _split(work.batch, speeds)
                if shares is None:
                    continue
                stages = [cut(model, g, n_samples, work.training) for g, n_samples in zip(groups, shares, strict=True)]
                if any(s is None for s in stages):
                    continue
                pipes = tuple(Pipeline(s, n_samples) for s, n_samples in zip(stages, shares, strict=True))  # type: ignore[arg-type]
                for micro in MICRO_BATCHES:
                    if micro <= min(shares):
                        plan = Plan(pipes, micro)
                        if plan not in seen:
                            seen.add(plan)
                            yield plan
