"""Dora's planner (pure): the candidate plans, each scored by the closed-form estimate and then by
its contention-aware schedule, filtered by the QoE, reduced to the Pareto set.

``partition(..., order=None)`` keeps the closed-form estimate (faster, blind
to how transfers queue on the shared access point).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from coordinator.dora.network import Order, rescore
from coordinator.dora.partitioner import Estimate, PartitionPlan, candidates, estimate
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, QoE, Workload


def pareto(scored: Sequence[tuple[PartitionPlan, Estimate]]) -> list[tuple[PartitionPlan, Estimate]]:
    """The plans no other plan dominates (one per distinct estimate), fastest first."""
    front: list[tuple[PartitionPlan, Estimate]] = []
    for plan, est in sorted(scored, key=lambda x: (x[1].latency_s, x[1].energy_j, -x[1].throughput)):
        if not any(e.dominates(est) or e == est for _, e in front):
            front = [(p, e) for p, e in front if not est.dominates(e)] + [(plan, est)]
    return front


def partition(
    model: ModelProfile,
    devices: Sequence[DeviceProfile],
    net: Network,
    work: Workload,
    qoe: QoE,
    order: Order | None = "critical",
) -> list[tuple[PartitionPlan, Estimate]]:
    """The Pareto set (latency, throughput, energy) of the candidate plans that meet ``qoe``."""
    by_name = {d.name: d for d in devices}
    scored = [(plan, score(plan, model, by_name, net, work, order)) for plan in candidates(model, devices, work)]
    return pareto([(p, e) for p, e in scored if qoe.met(e.latency_s, e.throughput)])


def score(
    plan: PartitionPlan,
    model: ModelProfile,
    devices: Mapping[str, DeviceProfile],
    net: Network,
    work: Workload,
    order: Order | None = "critical",
) -> Estimate:
    """The closed-form estimate, re-scored by the schedule in ``order`` (None: closed form only)."""
    est = estimate(plan, model, devices, net, work)
    return est if order is None else rescore(plan, est, model, devices, net, work, order)
