"""The partitioners Dora is measured against (pure), each giving one plan:

- :func:`exo_ring`: exo's ring memory-weighted partitioning: one pipeline
  over every device, layers in proportion to each device's memory, no
  micro-batching, no regard for speed or energy;
- :func:`even_split`: one pipeline over every device, the same number of
  layers on each;
- :func:`best_single`: the one device that finishes a batch soonest alone;
- :func:`petals_chain`: Petals-style min-latency routing: the chain of
  devices and layer blocks with the least end-to-end latency (compute plus
  transfers; shortest path over (layer, devices used), at most
  ``PETALS_MAX_DEVICES`` of the fastest devices considered);
- :func:`throughput_only`: Dora's candidates, the one with the highest
  throughput, with no QoE and no energy term.

A plan that does not fit the devices' memory is None (the baseline cannot
run that model on those devices).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from coordinator.dora.partitioner import PartitionPlan, Pipeline, PlacedStage, candidates, estimate, stage_memory
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, Workload

PETALS_MAX_DEVICES = 10


def _fits(model: ModelProfile, devices: Sequence[DeviceProfile], plan: PartitionPlan, work: Workload) -> bool:
    by_name = {d.name: d for d in devices}
    return all(
        stage_memory(model, s.start, s.end, p.samples, work.training) <= by_name[s.device].memory_bytes
        for p in plan.pipelines
        for s in p.stages
    )


def _chain(
    model: ModelProfile, chain: Sequence[DeviceProfile], weights: Sequence[float], work: Workload
) -> PartitionPlan | None:
    """One pipeline over ``chain``, layers in proportion to ``weights`` (at least one each)."""
    chain = list(chain)[: model.layers]
    weights = list(weights)[: model.layers]
    total, bounds, acc = sum(weights), [0], 0.0
    for i, w in enumerate(weights[:-1]):
        acc += w
        lo, hi = bounds[-1] + 1, model.layers - (len(chain) - 1 - i)
        bounds.append(min(max(round(model.layers * acc / total), lo), hi))
    bounds.append(model.layers)
    stages = tuple(PlacedStage(d.name, a, b) for d, a, b in zip(chain, bounds, bounds[1:], strict=False))
    plan = PartitionPlan((Pipeline(stages, work.batch),), 1)
    return plan if _fits(model, chain, plan, work) else None


def exo_ring(model: ModelProfile, devices: Sequence[DeviceProfile], work: Workload) -> PartitionPlan | None:
    ring = sorted(devices, key=lambda d: (-d.memory_bytes, d.name))
    return _chain(model, ring, [d.memory_bytes for d in ring], work)


def even_split(model: ModelProfile, devices: Sequence[DeviceProfile], work: Workload) -> PartitionPlan | None:
    return _chain(model, devices, [1.0] * len(devices), work)


def best_single(
    model: ModelProfile, devices: Sequence[DeviceProfile], net: Network, work: Workload
) -> PartitionPlan | None:
    by_name = {d.name: d for d in devices}
    alone = [PartitionPlan((Pipeline((PlacedStage(d.name, 0, model.layers),), work.batch),), 1) for d in devices]
    fitting = [p for p in alone if _fits(model, devices, p, work)]
    return min(fitting, key=lambda p: estimate(p, model, by_name, net, work).latency_s, default=None)


def petals_chain(
    model: ModelProfile, devices: Sequence[DeviceProfile], net: Network, work: Workload
) -> PartitionPlan | None:
    pool = sorted(devices, key=lambda d: (d.compute_s(0, model.layers, work.training), d.name))[:PETALS_MAX_DEVICES]
    n = work.batch
    # state: (layers done, devices used as a bit mask); an edge runs layers [i, j) on an unused device
    start = (0, 0)
    dist: dict[tuple[int, int], float] = {start: 0.0}
    prev: dict[tuple[int, int], tuple[tuple[int, int], PlacedStage]] = {}
    heap: list[tuple[float, int, int]] = [(0.0, 0, 0)]
    while heap:
        d, i, used = heapq.heappop(heap)
        if d > dist[(i, used)]:
            continue
        if i == model.layers:
            stages: list[PlacedStage] = []
            node = (i, used)
            while node != start:
                node, stage = prev[node]
                stages.append(stage)
            return PartitionPlan((Pipeline(tuple(reversed(stages)), n),), 1)
        hop = 2 * net.latency_s + 2 * n * model.activation_bytes[i - 1] / net.shared_bytes_s if i else 0.0  # relayed
        for k, dev in enumerate(pool):
            if used >> k & 1:
                continue
            for j in range(i + 1, model.layers + 1):
                if stage_memory(model, i, j, n, work.training) > dev.memory_bytes:
                    break
                cost = d + hop + n * dev.compute_s(i, j, work.training)
                node = (j, used | 1 << k)
                if cost < dist.get(node, float("inf")):
                    dist[node], prev[node] = cost, ((i, used), PlacedStage(dev.name, i, j))
                    heapq.heappush(heap, (cost, j, node[1]))
    return None


def throughput_only(
    model: ModelProfile, devices: Sequence[DeviceProfile], net: Network, work: Workload
) -> PartitionPlan | None:
    by_name = {d.name: d for d in devices}
    return max(
        candidates(model, devices, work),
        key=lambda p: estimate(p, model, by_name, net, work).throughput,
        default=None,
    )
