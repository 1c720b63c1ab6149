"""Dora's baselines, checked by hand: exo's memory-weighted ring, an even split, the best single
device, Petals' min-latency chain and a throughput-only pick."""

from __future__ import annotations

from coordinator.dora.baselines import best_single, even_split, exo_ring, petals_chain, throughput_only
from coordinator.dora.partitioner import PlacedStage, candidates, estimate
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, Workload

MODEL = ModelProfile("m", (1000,) * 8, (100,) * 8)
WORK = Workload(training=False, batch=2)


def dev(name: str, per_layer_s: float, memory: int = 10**6) -> DeviceProfile:
    return DeviceProfile(name, memory, (per_layer_s,) * 8, (2 * per_layer_s,) * 8, 5.0, 1.0, 1e9)


def _stages(plan: object) -> list[PlacedStage]:
    assert plan is not None
    return [s for p in plan.pipelines for s in p.stages]  # type: ignore[attr-defined]


def test_exo_weights_layers_by_memory_and_even_split_by_count() -> None:
    big, small = dev("big", 0.01, memory=3000), dev("small", 0.001, memory=1000)
    # memory 3:1 of 8 layers: 6 and 2, the biggest device first, whatever its speed
    assert _stages(exo_ring(MODEL, [small, big], WORK)) == [PlacedStage("big", 0, 6), PlacedStage("small", 6, 8)]
    assert _stages(even_split(MODEL, [small, big], WORK)) == [PlacedStage("small", 0, 4), PlacedStage("big", 4, 8)]
    assert exo_ring(MODEL, [dev("a", 0.01, memory=200), dev("b", 0.01, memory=200)], WORK) is None  # 400 B each


def test_best_single_and_petals_chain_minimize_latency() -> None:
    fast, slow = dev("fast", 0.001), dev("slow", 0.002)
    net = Network(1e6, latency_s=0.5)  # transfers are dear: one device does it all
    assert _stages(best_single(MODEL, [slow, fast], net, WORK)) == [PlacedStage("fast", 0, 8)]
    assert _stages(petals_chain(MODEL, [slow, fast], net, WORK)) == [PlacedStage("fast", 0, 8)]
    tight = [dev("fast", 0.001, memory=500), dev("slow", 0.002, memory=1000)]  # fast holds 5 layers at most
    assert best_single(MODEL, tight, net, WORK) == best_single(MODEL, tight[1:], net, WORK)
    assert _stages(petals_chain(MODEL, tight, net, WORK)) == [PlacedStage("slow", 0, 8)]  # 32 ms beats 22 ms + 0.5 s
    cheap = Network(1e9, latency_s=0.0)
    assert _stages(petals_chain(MODEL, tight, cheap, WORK)) == [PlacedStage("fast", 0, 5), PlacedStage("slow", 5, 8)]
    assert petals_chain(MODEL, [dev("tiny", 0.001, memory=50)], net, WORK) is None


def test_throughput_only_takes_the_fastest_candidate() -> None:
    devices = [dev("a", 0.001), dev("b", 0.001), dev("c", 0.003)]
    net = Network(1e9, 0.0)
    best = throughput_only(MODEL, devices, net, Workload(False, 8))
    by_name = {d.name: d for d in devices}
    top = max(
        estimate(p, MODEL, by_name, net, Workload(False, 8)).throughput
        for p in candidates(MODEL, devices, Workload(False, 8))
    )
    assert best is not None and estimate(best, MODEL, by_name, net, Workload(False, 8)).throughput == top
