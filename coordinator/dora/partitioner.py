"""Dora's partitioner (pure): hybrid data x pipeline plans over heterogeneous devices and their
predicted latency, throughput and energy in closed form (:mod:`coordinator.dora.planner` re-scores
them with the contention-aware schedule and keeps the Pareto set that meets the QoE).

A plan is ``p`` data-parallel pipelines, each a chain of devices holding
contiguous layer ranges, the batch split between pipelines in proportion to
their speed, run with ``M`` micro-batches.  Candidates: devices ranked by
speed and, separately, by energy per sample; the first ``n`` of a ranking,
dealt round-robin into ``p`` pipelines; each chain cut by dynamic programming
(the slowest stage as fast as possible within every device's memory); every
micro-batch count in ``MICRO_BATCHES`` that leaves ``MIN_MICRO_SAMPLES`` per
micro-batch.  That is O(devices^2 * pipelines *
micro-batch counts) cuts of O(devices * layers^2) each.

Cost model, one batch (:func:`estimate`).  Transfers go through the driver
(:mod:`coordinator.dora.driver`), which is wired to the access point: the
input goes from it to the first stage, each stage's output comes back to it
and on to the next stage, and in inference the last stage's output comes
back (:func:`hops`).  Each leg costs one network latency (``Network.latency_s``,
half a measured round trip, HTTP included), each byte crosses the access
point once per leg over the air.

- a stage's time per micro-batch: its samples times its device's per-sample
  time over its layers (forward; backward too in training);
- a transfer: its legs' latency plus the larger of its crossings of the
  access point and the devices' own links;
- the access point is one medium: every transfer of every pipeline queues on
  it, so in each micro-batch round it is busy for the sum of their crossings;
- a pipeline's latency: fill (its stages and transfers in turn) plus
  ``M - 1`` times its bottleneck (its slowest stage or transfer, or the
  medium); in training the backward pass follows the same way, the same bytes
  flowing back as gradients, then, with ``p > 1`` pipelines, the gradient
  all-reduce through the driver (every pipeline uploads its gradients and
  downloads the sum: ``2 p`` times the weights cross the access point);
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
from itertools import pairwise

from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, Workload

MICRO_BATCHES = (1, 2, 4, 8)
# Profiles time layers at batch 2 (device.dora.profile.profile_layers); a micro-batch of one sample runs
# below that per-sample speed (fixed costs per call), so micro-batches keep at least this many samples.
MIN_MICRO_SAMPLES = 2
MAX_PIPELINES = 4


@dataclass(frozen=True)
class PlacedStage:
    device: str
    start: int
    end: int  # exclusive


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[PlacedStage, ...]
    samples: int  # its part of the batch


@dataclass(frozen=True)
class PartitionPlan:
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


@dataclass(frozen=True)
class Hop:
    """A transfer through the driver: its bytes per sample, crossings of the access point, network
    latencies (legs), and the devices whose own links it uses."""

    bytes: int
    crossings: int
    legs: int
    devices: tuple[str, ...]

    def seconds(self, samples: float, devices: Mapping[str, DeviceProfile], net: Network) -> tuple[float, float]:
        """(access-point time, the whole transfer's time) for ``samples`` samples."""
        size = samples * self.bytes
        crossing = self.crossings * size / net.shared_bytes_s
        links = size / min(devices[d].link_bytes_s for d in self.devices)
        return crossing, self.legs * net.latency_s + max(crossing, links)


def hops(model: ModelProfile, stages: Sequence[PlacedStage], training: bool) -> tuple[list[Hop], list[Hop]]:
    """A pipeline's transfers: forward (the input to stage 0, then one before each later stage, and
    in inference the output back after the last) and, in training, backward (one after each stage
    but the first, in reverse order, then the first stage's empty answer)."""
    inter = [Hop(model.activation_bytes[a.end - 1], 2, 2, (a.device, b.device)) for a, b in pairwise(stages)]
    forward = [Hop(model.input_bytes, 1, 1, (stages[0].device,)), *inter]
    if training:
        return forward, [*reversed(inter), Hop(0, 0, 1, (stages[0].device,))]
    return [*forward, Hop(model.activation_bytes[-1], 1, 1, (stages[-1].device,))], []


def allreduce_s(model: ModelProfile, pipelines: int, net: Network) -> tuple[float, float]:
    """(access-point time, latency) of the gradient all-reduce through the driver (none for one pipeline)."""
    if pipelines < 2:
        return 0.0, 0.0
    return 2 * pipelines * sum(model.weight_bytes) / net.shared_bytes_s, 4 * net.latency_s


def stage_memory(model: ModelProfile, start: int, end: int, samples: int, training: bool) -> int:
    """Weights, plus in training the activations of every sample kept for the backward pass."""
    weights = sum(model.weight_bytes[start:end])
    return weights + (samples * sum(model.activation_bytes[start:end]) if training else 0)


def estimate(
    plan: PartitionPlan, model: ModelProfile, devices: Mapping[str, DeviceProfile], net: Network, work: Workload
) -> Estimate:
    m_count = plan.micro_batches
    fwd: list[list[float]] = []
    bwd: list[list[float]] = []
    xfer: list[tuple[list[float], list[float]]] = []
    medium = 0.0  # access point busy per micro-batch round, every pipeline's transfers
    for pipe in plan.pipelines:
        m = pipe.samples / m_count
        fwd.append([m * sum(devices[s.device].forward_s[s.start : s.end]) for s in pipe.stages])
        bwd.append([m * sum(devices[s.device].backward_s[s.start : s.end]) for s in pipe.stages])
        both = []
        for direction in hops(model, pipe.stages, work.training):
            timed = [h.seconds(m, devices, net) for h in direction]
            medium += sum(c for c, _ in timed)
            both.append([t for _, t in timed])
        xfer.append((both[0], both[1]))

    def run(stage_s: list[float], hop_s: list[float]) -> float:
        slowest = max([*stage_s, *hop_s, medium])
        return sum(stage_s) + sum(hop_s) + (m_count - 1) * slowest

    latency = 0.0
    for f, b, (hf, hb) in zip(fwd, bwd, xfer, strict=True):
        latency = max(latency, run(f, hf) + (run(b, hb) if work.training else 0.0))
    if work.training:
        latency += sum(allreduce_s(model, len(plan.pipelines), net))
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


def cut(
    model: ModelProfile, chain: Sequence[DeviceProfile], samples: int, training: bool
) -> tuple[PlacedStage, ...] | None:
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
    stages: list[PlacedStage] = []
    end = n_layers
    for j in range(k, 0, -1):
        start = back[j][end]
        stages.append(PlacedStage(chain[j - 1].name, start, end))
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


def candidates(model: ModelProfile, devices: Sequence[DeviceProfile], work: Workload) -> Iterator[PartitionPlan]:
    everything = (0, model.layers)

    def per_sample(d: DeviceProfile) -> float:
        return d.compute_s(*everything, work.training)

    rankings = {
        tuple(sorted(devices, key=lambda d: (per_sample(d), d.name))),
        tuple(sorted(devices, key=lambda d: (d.busy_w * per_sample(d), d.name))),
    }
    seen: set[PartitionPlan] = set()
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
                    if micro == 1 or min(shares) >= MIN_MICRO_SAMPLES * micro:
                        plan = PartitionPlan(pipes, micro)
                        if plan not in seen:
                            seen.add(plan)
                            yield plan
