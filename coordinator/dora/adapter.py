"""Dora's runtime adapter (pure): what runs now, given how the devices and the network are doing.

:class:`Conditions` is what the coordinator measures: the access point's
bandwidth, each device's slowdown (its measured time over its profiled time:
other load, thermal throttling), its battery, and who is present.  The
adapter re-plans (:func:`coordinator.dora.planner.partition` on the profiles
adjusted to the conditions) when membership changes, when a device's battery
falls below ``battery_floor`` (it is left out), or when bandwidth or a
slowdown moves by more than ``tolerance`` since the last plan; otherwise the
running mix stays (no churn on noise).

The choice (:func:`choose`) serves a throughput target at the least energy
per sample, time-sharing two plans if that is cheaper than the cheapest plan
that reaches it alone: running plan A a fraction ``x`` of the time and B the
rest gives ``x * T_A + (1 - x) * T_B`` samples/s at energy on the line
between them (the lower convex hull of the Pareto set in throughput x energy
per sample).  Every plan in a mix meets the latency bound by itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from coordinator.dora.partitioner import Estimate, PartitionPlan
from coordinator.dora.planner import partition
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, QoE, Workload


@dataclass(frozen=True)
class Conditions:
    shared_bytes_s: float
    present: frozenset[str]
    slowdown: Mapping[str, float] = field(default_factory=dict)  # measured / profiled time; 1 when absent
    battery: Mapping[str, float] = field(default_factory=dict)  # 0..1; mains-powered devices are absent


@dataclass(frozen=True)
class Mix:
    parts: tuple[tuple[PartitionPlan, Estimate, float], ...]  # (plan, its estimate, share of time)
    batch: int  # samples per batch (estimates are per batch)

    @property
    def throughput(self) -> float:
        return sum(e.throughput * x for _, e, x in self.parts)

    @property
    def energy_per_sample(self) -> float:
        return sum(x * e.throughput * _per_sample(e, self.batch) for _, e, x in self.parts) / self.throughput


def _per_sample(e: Estimate, batch: int) -> float:
    return e.energy_j / batch


def choose(front: Sequence[tuple[PartitionPlan, Estimate]], qoe: QoE, batch: int) -> Mix | None:
    """The least-energy way to serve ``qoe.min_throughput`` (or the least-energy plan when there is
    no throughput target) with plans that meet the latency bound; None if nothing can."""
    ok = [(p, e) for p, e in front if qoe.max_latency_s is None or e.latency_s <= qoe.max_latency_s]
    if not ok:
        return None
    target = qoe.min_throughput
    if target is None:
        p, e = min(ok, key=lambda pe: _per_sample(pe[1], batch))
        return Mix(((p, e, 1.0),), batch)
    best: tuple[float, Mix] | None = None
    for p, e in ok:  # one plan alone
        if e.throughput >= target:
            cost = _per_sample(e, batch)
            if best is None or cost < best[0]:
                best = (cost, Mix(((p, e, 1.0),), batch))
    for pa, ea in ok:  # time-share a slower and a faster plan to land on the target
        for pb, eb in ok:
            if ea.throughput < target < eb.throughput:
                x = (eb.throughput - target) / (eb.throughput - ea.throughput)  # time on the slower one
                samples_a, samples_b = x * ea.throughput, (1 - x) * eb.throughput
                cost = (samples_a * _per_sample(ea, batch) + samples_b * _per_sample(eb, batch)) / target
                if best is None or cost < best[0] - 1e-15:
                    best = (cost, Mix(((pa, ea, x), (pb, eb, 1 - x)), batch))
    return best[1] if best else None


def adjusted(devices: Sequence[DeviceProfile], c: Conditions, battery_floor: float) -> list[DeviceProfile]:
    """The profiles as the devices are now: absent or nearly flat ones left out, slowed ones slower."""
    out = []
    for d in devices:
        if d.name not in c.present or c.battery.get(d.name, 1.0) < battery_floor:
            continue
        k = c.slowdown.get(d.name, 1.0)
        out.append(
            replace(d, forward_s=tuple(t * k for t in d.forward_s), backward_s=tuple(t * k for t in d.backward_s))
        )
    return out


@dataclass
class Adapter:
    model: ModelProfile
    devices: Sequence[DeviceProfile]
    net: Network
    work: Workload
    qoe: QoE
    tolerance: float = 0.2
    battery_floor: float = 0.15
    current: Mix | None = None
    _basis: Conditions | None = None
    replans: int = 0

    def observe(self, c: Conditions) -> Mix | None:
        """The mix to run under ``c`` (re-planned only when the conditions moved enough)."""
        if self._basis is None or self._moved(self._basis, c):
            devices = adjusted(self.devices, c, self.battery_floor)
            net = replace(self.net, shared_bytes_s=c.shared_bytes_s)
            front = partition(self.model, devices, net, self.work, QoE(max_latency_s=self.qoe.max_latency_s))
            self.current, self._basis = choose(front, self.qoe, self.work.batch), c
            self.replans += 1
        return self.current

    def _moved(self, a: Conditions, b: Conditions) -> bool:
        def far(x: float, y: float) -> bool:
            return abs(x - y) > self.tolerance * max(abs(x), 1e-12)

        low = {n for n in b.present if b.battery.get(n, 1.0) < self.battery_floor}
        was_low = {n for n in a.present if a.battery.get(n, 1.0) < self.battery_floor}
        return (
            a.present != b.present
            or low != was_low
            or far(a.shared_bytes_s, b.shared_bytes_s)
            or any(far(a.slowdown.get(n, 1.0), b.slowdown.get(n, 1.0)) for n in a.present | b.present)
        )
