"""Dora benchmark: Dora's plans against exo's ring, an even split, the best single device, Petals'
min-latency chain and a throughput-only planner, simulated on measured profiles and run live.

Profiles: every layer of weave-home-cloud (8 decoder layers) and of
weave-traffic-cnn (8 blocks) is timed on this machine (forward and backward,
per sample, the same code a device daemon runs for ``POST
/v1/dora/profile``), then each device kind runs it a stated factor slower
(``KINDS``: phone 2x, Raspberry Pi 4x, TV box 3x, Jetson 1.5x, edge node 1x)
with its power model (:data:`edgeweave.config.DEFAULT_POWER`; the TV box as a
Pi).  Simulated figures are predicted by Dora's own models: the closed-form
estimate, then the contention-aware schedule (critical-path-first) for every
system, on the same network:

- **smart home** (weave-home-cloud): a phone, two Pis, a TV box on one Wi-Fi
  access point (50 Mbit/s shared, 3 ms); batch 8 sequences of 64 tokens;
- **traffic analytics** (weave-traffic-cnn): three cameras' Pi-class edge
  boxes and a Jetson on a 100 Mbit/s switch (0.5 ms); batch 32 frames;
- **small edge cluster** (weave-home-cloud): four edge nodes on Ethernet
  (1 Gbit/s, 0.2 ms); batch 8.

Each for inference and training.  Speed-up: the baseline's latency over
Dora's fastest plan ("best baseline": the fastest one).  Energy at equal QoE:
the QoE is 1.5x Dora's fastest latency; Dora's least-energy plan within it
against each baseline that meets it too ("best": the least-energy such
baseline; none meeting it: null).

Live part (``live_*`` keys): the smart home and traffic analytics for real,
one device daemon per device in its network namespace behind an emulated
access point (:mod:`edgeweave.emulation`: 50 Mbit/s, 2 ms each way, 1e-4
segment loss; 100 Mbit/s, 0.25 ms), CPU quotas for the kinds (phone 0.5, Pis
and camera boxes 0.25, TV box 0.33, Jetson 0.75 of a core); profiles
measured on the daemons; every system's plan run on them for inference and
training (the driver on this machine, relaying activations); batch / step
time measured, and the first training step's loss of every system (they start
from the same weights and data, so they must agree).  Skipped, with the
reason, where namespaces are not available.  The edge cluster is simulated
only (this machine cannot emulate four full-speed nodes).

Dynamic run (smart home, inference, simulated): the access point halves at
10 s and the phone leaves at 20 s; QoE is 1.5x the fastest plan's latency at
the start; Dora's adapter re-plans when it sees the change (one heartbeat
later, 1 s, plus its measured planning time); the baselines keep their plan
and re-partition only when a device leaves.  Scale-out (simulated): 16 and 32
devices of the four home kinds on a 200 Mbit/s access point, inference, batch
4 per device (``scale_out_*`` keys, with the time the whole comparison took).

    python -m benchmarks.dora [--quick]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from benchmarks.results_io import RESULTS, parser, save_result
from coordinator.dora import baselines
from coordinator.dora.adapter import Adapter, Conditions
from coordinator.dora.partitioner import Estimate, PartitionPlan
from coordinator.dora.planner import partition, score
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network, QoE, Workload
from device.dora.profile import profile_layers
from edgeweave.config import DEFAULT_POWER

LM = "weave-home-cloud"
CNN = "weave-traffic-cnn"
SEQ_LEN = 64
KINDS = {"phone": 2.0, "pi": 4.0, "tv": 3.0, "jetson": 1.5, "edge": 1.0}  # stated slowdowns against this machine
POWER = {
    "phone": DEFAULT_POWER["phone"],
    "pi": DEFAULT_POWER["pi"],
    "tv": DEFAULT_POWER["pi"],
    "jetson": DEFAULT_POWER["jetson"],
    "edge": DEFAULT_POWER["laptop"],
}


@dataclass(frozen=True)
class Scenario:
    model: str
    devices: tuple[tuple[str, str, int], ...]  # (name, kind, GiB free)
    net: Network
    batch: int  # samples per request / step
    live_cpu: tuple[tuple[str, float], ...] = ()  # run live: (device, share of a core) behind the AP
    live_ap_mbit: float = 0.0
    live_delay_ms: float = 0.0  # one way, emulated in the transport layer
    live_loss: float = 0.0  # per segment


SCENARIOS = {
    "smart_home": Scenario(
        LM,
        (("phone-1", "phone", 3), ("pi-1", "pi", 2), ("pi-2", "pi", 2), ("tv-1", "tv", 2)),
        Network(50e6 / 8, 0.003),
        8,
        (("phone-1", 0.5), ("pi-1", 0.25), ("pi-2", 0.25), ("tv-1", 0.33)),
        50.0,
        2.0,
        1e-4,
    ),
    "traffic_analytics": Scenario(
        CNN,
        (("cam-1", "pi", 1), ("cam-2", "pi", 1), ("cam-3", "pi", 1), ("jetson-1", "jetson", 4)),
        Network(100e6 / 8, 0.0005),
        32,
        (("cam-1", 0.25), ("cam-2", 0.25), ("cam-3", 0.25), ("jetson-1", 0.75)),
        100.0,
        0.25,
    ),
    "edge_cluster": Scenario(
        LM,
        (("edge-1", "edge", 8), ("edge-2", "edge", 8), ("edge-3", "edge", 8), ("edge-4", "edge", 8)),
        Network(1e9 / 8, 0.0002),
        8,
    ),
}
QOE_SLACK = 1.5  # the QoE: this times the fastest plan's latency
SCALE_OUT = (16, 32)  # simulated device counts (inference, a 200 Mbit/s access point, batch 4 per device)
Baseline = Callable[[ModelProfile, Sequence[DeviceProfile], Network, Workload], PartitionPlan | None]
BASELINES: dict[str, Baseline] = {
    "exo_ring": lambda m, d, n, w: baselines.exo_ring(m, d, w),
    "even_split": lambda m, d, n, w: baselines.even_split(m, d, w),
    "best_single": baselines.best_single,
    "petals_chain": baselines.petals_chain,
    "throughput_only": baselines.throughput_only,
}


def measured_model(name: str, rounds: int) -> tuple[ModelProfile, tuple[float, ...], tuple[float, ...]]:
    prof = profile_layers(name, batch=2, seq_len=SEQ_LEN, rounds=rounds)
    model = ModelProfile(name, tuple(prof.activation_bytes), tuple(prof.weight_bytes), prof.input_bytes)
    return model, tuple(prof.forward_s), tuple(prof.backward_s)


def devices_for(
    spec: Sequence[tuple[str, str, int]], fwd: Sequence[float], bwd: Sequence[float]
) -> list[DeviceProfile]:
    out = []
    for name, kind, gib in spec:
        k, power = KINDS[kind], POWER[kind]
        link = 1e9 / 8
        out.append(
            DeviceProfile(
                name,
                gib << 30,
                tuple(t * k for t in fwd),
                tuple(t * k for t in bwd),
                power.max_w - power.idle_w,
                power.idle_w,
                link,
            )
        )
    return out


def scored(
    plan: PartitionPlan, model: ModelProfile, devices: Sequence[DeviceProfile], net: Network, work: Workload
) -> Estimate:
    return score(plan, model, {d.name: d for d in devices}, net, work)


def compare(model: ModelProfile, devices: list[DeviceProfile], net: Network, work: Workload) -> dict[str, Any]:
    """Speed-up of Dora's fastest plan over each baseline; energy of Dora's cheapest plan within the
    QoE (``QOE_SLACK`` x its fastest latency) against each baseline that meets the same QoE."""
    front = partition(model, devices, net, work, QoE())
    fastest = min(e.latency_s for _, e in front)
    bound = QOE_SLACK * fastest
    dora = min((e for _, e in front if e.latency_s <= bound), key=lambda e: e.energy_j)
    out: dict[str, Any] = {"dora_latency_s": fastest, "qoe_latency_s": bound, "dora_energy_j_at_qoe": dora.energy_j}
    for name, make in BASELINES.items():
        plan = make(model, devices, net, work)
        if plan is None:
            out[name] = None
            continue
        b = scored(plan, model, devices, net, work)
        meets = b.latency_s <= bound
        out[name] = {
            "latency_s": b.latency_s,
            "energy_j": b.energy_j,
            "meets_qoe": meets,
            "speedup": b.latency_s / fastest,
            "energy_reduction": 1 - dora.energy_j / b.energy_j if meets else None,
        }
    return out


def latency_now(
    plan: PartitionPlan | None, model: ModelProfile, devices: list[DeviceProfile], net: Network, work: Workload
) -> float:
    present = {d.name for d in devices}
    if plan is None or not set(plan.devices) <= present:
        return float("inf")  # a device it needs is gone
    return scored(plan, model, devices, net, work).latency_s


def dynamic(
    model: ModelProfile, devices: list[DeviceProfile], net: Network, batch: int, planner_s: float
) -> dict[str, float]:
    """QoE violation seconds over 30 s: the AP halves at 10 s, the phone leaves at 20 s."""
    work = Workload(False, batch)
    start = partition(model, devices, net, work, QoE())
    bound = 1.5 * min(e.latency_s for _, e in start)
    everyone = {d.name for d in devices}
    bw = net.shared_bytes_s
    events = [(0.0, bw, everyone), (10.0, bw / 2, everyone), (20.0, bw / 2, everyone - {"phone-1"})]
    react = 1.0 + planner_s  # a heartbeat to notice, then planning
    out: dict[str, float] = {}
    adapter = Adapter(model, devices, net, work, QoE(max_latency_s=bound))
    violation = 0.0
    for i, (t, bw, present) in enumerate(events):
        end = events[i + 1][0] if i + 1 < len(events) else 30.0
        now_devices = [d for d in devices if d.name in present]
        now_net = replace(net, shared_bytes_s=bw)
        old = adapter.current
        old_plan = old.parts[0][0] if old else None
        if latency_now(old_plan, model, now_devices, now_net, work) > bound:
            violation += min(react, end - t) if i else 0.0
        mix = adapter.observe(Conditions(bw, frozenset(present)))
        if mix is None or latency_now(mix.parts[0][0], model, now_devices, now_net, work) > bound:
            violation += max(0.0, end - t - (react if i else 0.0))
    out["dora"] = violation
    for name, make in BASELINES.items():
        plan = make(model, devices, net, work)
        violation = 0.0
        for i, (t, bw, present) in enumerate(events):
            end = events[i + 1][0] if i + 1 < len(events) else 30.0
            now_devices = [d for d in devices if d.name in present]
            now_net = replace(net, shared_bytes_s=bw)
            if plan is not None and not set(plan.devices) <= present:  # re-partition over who is left
                violation += min(react, end - t)
                plan = make(model, now_devices, now_net, work)
                t += react
            if latency_now(plan, model, now_devices, now_net, work) > bound:
                violation += end - t
        out[name] = violation
    return out


def planner_time(model: ModelProfile, fwd: Sequence[float], bwd: Sequence[float], rounds: int) -> float:
    """Seconds to plan 8 devices x 32 layers (the model's layers repeated), median of ``rounds``."""
    reps = -(-32 // model.layers)
    big = ModelProfile("x32", (model.activation_bytes * reps)[:32], (model.weight_bytes * reps)[:32])
    f32, b32 = (tuple(fwd) * reps)[:32], (tuple(bwd) * reps)[:32]
    spec = [(f"d{i}", ("phone", "pi", "tv", "edge")[i % 4], 4) for i in range(8)]
    devs = devices_for(spec, f32, b32)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        partition(big, devs, Network(50e6 / 8, 0.003), Workload(False, 8), QoE())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def live(name: str, scenario: Scenario, steps: int, training_steps: int) -> dict[str, Any]:
    """A scenario for real: its devices' daemons in network namespaces behind an emulated access
    point, CPU quotas for their kinds; every system's plan, planned on profiles measured on the
    daemons, run on them for inference (median batch time of ``steps``) and training (median step
    time of ``training_steps``, and the first step's loss: every plan starts from the same weights
    and data, so it must be the same)."""
    import tempfile
    from pathlib import Path

    from coordinator.dora.emulation import Lan, unavailable
    from coordinator.dora.service import Member, measure, run
    from edgeweave.cluster.cluster_files import LocalDevice, new_secret
    from edgeweave.wire.auth import ClusterKey

    reason = unavailable()
    if reason is not None:
        return {"notice": f"live run skipped: {reason}"}
    secret = new_secret()
    key = ClusterKey(secret.encode())
    kinds = {d: kind for d, kind, _ in scenario.devices}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Lan(scenario.live_ap_mbit, scenario.live_delay_ms, scenario.live_loss) as lan,
    ):
        services = []
        try:
            members = []
            for device, share in scenario.live_cpu:
                host = lan.add(device, link_mbit=2 * scenario.live_ap_mbit, cpu_share=share)
                kind = "phone" if kinds[device] == "phone" else "pi" if kinds[device] in ("pi", "tv") else "jetson"
                prof = LocalDevice(device, kind, "llamacpp", threads=1, model=LM)
                services.append(lan.spawn_device(host, prof, secret, Path(tmp)))
            for svc, (device, _) in zip(services, scenario.live_cpu, strict=True):
                svc.wait_ready(300)
                power = POWER[kinds[device]]
                members.append(Member(device, svc.url, 2 << 30, power.idle_w, power.max_w))
            model, devices, net = measure(members, key, scenario.model, SEQ_LEN)
            out: dict[str, Any] = {
                "notices": lan.notices,
                "measured_forward_ms_per_sample": {d.name: 1000 * sum(d.forward_s) for d in devices},
                "measured_ap_mbit_latency_ms": [8e-6 * net.shared_bytes_s, 1000 * net.latency_s],
            }
            for training, n_steps in ((False, steps), (True, training_steps)):
                work = Workload(training, scenario.batch)
                front = partition(model, devices, net, work, QoE())
                plans = {"dora": min(front, key=lambda pe: pe[1].latency_s)[0]}
                plans |= {b: p for b, make in BASELINES.items() if (p := make(model, devices, net, work)) is not None}
                case = f"{name}_{'training' if training else 'inference'}"
                out[case] = {}
                for system, plan in plans.items():
                    measured = run(plan, members, key, scenario.model, training, SEQ_LEN, n_steps)
                    out[case][system] = {
                        "plan": [[(s.device, s.start, s.end) for s in p.stages] for p in plan.pipelines],
                        "micro_batches": plan.micro_batches,
                        "batch_s": measured.batch_s,
                        "predicted_s": scored(plan, model, devices, net, work).latency_s,
                        **({"first_loss": measured.losses[0]} if training else {}),
                    }
            return out
        finally:
            for svc in services:
                svc.stop()


def plot(results: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(results)
    names = list(BASELINES)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    x = np.arange(len(cases))
    for k, name in enumerate(names):
        sp = [(results[c][name] or {}).get("speedup") or 0 for c in cases]
        er = [(results[c][name] or {}).get("energy_reduction") or 0 for c in cases]
        a.bar(x + k * 0.15, sp, 0.15, label=name)
        b.bar(x + k * 0.15, er, 0.15, label=name)
    for ax, title in ((a, "Dora speed-up over baseline (x)"), (b, "Dora energy reduction at equal QoE")):
        ax.set_xticks(x + 0.3, cases, fontsize=7)
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.suptitle(
        "Dora vs baselines, simulated on profiles measured on this machine (stated device factors)", fontsize=8
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, "one timing round").parse_args(argv)
    from rich.console import Console

    console = Console()
    rounds = 1 if args.quick else 5
    profiles = {name: measured_model(name, rounds) for name in (LM, CNN)}
    for name, (model, fwd, _) in profiles.items():
        console.print(f"{name}: {model.layers} layers, forward {1000 * sum(fwd):.2f} ms / sample on this machine")
    results: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for scenario_name, sc in SCENARIOS.items():
        model, fwd, bwd = profiles[sc.model]
        devices = devices_for(sc.devices, fwd, bwd)
        for training in (False, True):
            case = f"{scenario_name}_{'training' if training else 'inference'}"
            results[case] = compare(model, devices, sc.net, Workload(training, sc.batch))
            rows = {n: v for n, v in results[case].items() if isinstance(v, dict)}
            summary[f"speedup_vs_best_baseline_{case}"] = min(v["speedup"] for v in rows.values())
            external = [v["speedup"] for n, v in rows.items() if n != "throughput_only"]  # not Dora's own search
            summary[f"speedup_vs_best_external_baseline_{case}"] = min(external)
            within = [v["energy_reduction"] for v in rows.values() if v["meets_qoe"]]
            summary[f"energy_reduction_vs_best_baseline_{case}"] = min(within) if within else None
            console.print(
                case,
                {
                    n: (round(v["speedup"], 2), v["energy_reduction"] and round(v["energy_reduction"], 3))
                    for n, v in rows.items()
                },
            )
    model, fwd, bwd = profiles[LM]
    planner_s = planner_time(model, fwd, bwd, rounds)
    summary["planner_s_8x32"] = planner_s
    for n in SCALE_OUT:  # a bigger home: the same kinds, repeated, on one access point
        spec = [(f"d{i}", ("phone", "pi", "tv", "edge")[i % 4], 4) for i in range(n)]
        t0 = time.perf_counter()
        results[f"scale_out_{n}"] = compare(
            model, devices_for(spec, fwd, bwd), Network(200e6 / 8, 0.003), Workload(False, 4 * n)
        )
        rows = {k: v for k, v in results[f"scale_out_{n}"].items() if isinstance(v, dict)}
        summary[f"speedup_vs_best_external_baseline_scale_out_{n}"] = min(
            v["speedup"] for k, v in rows.items() if k != "throughput_only"
        )
        summary[f"scale_out_{n}_s"] = time.perf_counter() - t0
    home = SCENARIOS["smart_home"]
    dyn = dynamic(model, devices_for(home.devices, fwd, bwd), home.net, home.batch, planner_s)
    for name, v in dyn.items():
        summary[f"qoe_violation_s_dynamic_{name}"] = v
    console.print("dynamic QoE violation s:", dyn)
    live_out: dict[str, Any] = {}
    for scenario_name, sc in SCENARIOS.items():
        if sc.live_cpu:
            with console.status(f"live: {scenario_name}, {len(sc.live_cpu)} daemons behind an emulated access point"):
                live_out[scenario_name] = live(scenario_name, sc, steps=2 if args.quick else 7,
                                               training_steps=1 if args.quick else 4)  # fmt: skip
            console.print(f"live {scenario_name}:", live_out[scenario_name])
            for case, systems in live_out[scenario_name].items():
                if isinstance(systems, dict) and "dora" in systems:
                    for name in BASELINES:
                        if name in systems:
                            speedup = systems[name]["batch_s"] / systems["dora"]["batch_s"]
                            summary[f"live_speedup_{case}_vs_{name}"] = speedup
                    losses = [v["first_loss"] for v in systems.values() if "first_loss" in v]
                    if losses:
                        summary[f"live_{case}_first_loss_spread"] = max(losses) - min(losses)
    save_result(
        "dora", args.quick, summary, results=results, kinds=KINDS, live=live_out,
        figures="simulated on measured profiles, plus live smart-home and traffic-analytics runs (live_*)",
    )  # fmt: skip
    plot(results, str(RESULTS / "dora.png"))
    for k, v in summary.items():
        console.print(f"{k:>56}: {v:.4g}" if isinstance(v, float) else f"{k:>56}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
