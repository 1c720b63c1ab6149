"""Circinus benchmark: SLO goodput, cost, planning time and profiling steps of Circinus against
exhaustive search, per-query greedy, single-tier planning (all cloud, all edge) and profiling without
early stopping, on three pipeline families and 10-1000 concurrent queries.

Operators are real and measured (:mod:`coordinator.circinus.measure`):
traffic-camera detectors and classifiers of two widths and resolutions
(onnxruntime; accuracy on held-out frames) and the weave-home LLMs
(llama.cpp; exact match on held-out commands).  Every profiling step runs the
operator once on this machine; a tier is a stated slowdown of it (device 4x,
edge 1x, cloud 0.2x) billed per busy second (device free, edge $0.10/h, cloud
$2/h), with stated links (device-edge 5 ms, edge-cloud 40 ms, device-cloud
45 ms).  So accuracy, latency and profiling work are measured; tiers,
prices and links are simulated.

Pipelines (``FAMILIES``): traffic analytics (detect -> classify ->
summarize), a meeting companion (voice activity -> speech recognition ->
{summary, action items}; the audio operators are stand-ins: the vision
models run on the same shapes, measured the same way) and a smart-home
security chain (motion -> {classify, alert}).  Queries draw a family, a rate
(0.5-2 /s) and an SLO (latency, minimum accuracy, cost cap) at random (seeded);
tier capacities grow with the query count so contention stays alike.

Goodput: invocations/s of queries whose plan meets their SLO, over all
offered.  Each system plans from scratch with its own profiler (planning
time includes its profiling runs).  Exhaustive search enumerates every plan
of every query and selects exactly: tractable up to ``EXHAUSTIVE_MAX``
queries.

Ratios: the best baseline is the planner baseline (greedy, all cloud, all
edge) with the most goodput; a cost ratio is a baseline's dollars per served
invocation over Circinus's (above 1: Circinus is cheaper), reported against
each planner baseline and, as the headline, against the best.  The
ablations report what their mechanism saves: profiling runs (early
stopping) and search steps (plan reuse across queries).

Last, a live run (:func:`live`): the traffic app's workload on a cluster of
real processes, Circinus's plans against greedy's, each camera streaming
frames; SLO attainment is frames answered within their latency SLO over
frames sent (a camera left unserved sends frames that miss), measured end
to end.

    python -m benchmarks.circinus [--quick]
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.results_io import RESULTS, parser, save_result
from coordinator.circinus.baselines import exhaustive, greedy, within
from coordinator.circinus.measure import FRAME_BYTES, TierSpec, measure
from coordinator.circinus.profiles import Profiler, Tiers
from coordinator.circinus.selection import Selection
from coordinator.circinus.solve import solve
from coordinator.circinus.spec import Workload, load, parse

TIER_SPECS = {"device": TierSpec(4.0, 0.0), "edge": TierSpec(1.0, 0.10 / 3600), "cloud": TierSpec(0.2, 2.0 / 3600)}
LINKS = {
    ("device", "edge"): (0.005, 50e6 / 8),
    ("edge", "cloud"): (0.04, 100e6 / 8),
    ("device", "cloud"): (0.045, 20e6 / 8),
}
CAPACITY_PER_QUERY = {"device": 0.02, "edge": 0.01, "cloud": 0.04}  # compute-seconds per second, per query
EXHAUSTIVE_MAX = 100
DET = [{"model": "traffic-det-w25-r32", "resolution": 32}, {"model": "traffic-det-w50-r64", "resolution": 64}]
CLS = [
    {"model": "traffic-cls-w25-r32", "resolution": 32},
    {"model": "traffic-cls-w50-r64", "resolution": 64},
    {"model": "weave-traffic-cnn", "resolution": 64},
]
LLM = [{"model": "weave-home-device"}, {"model": "weave-home-cloud"}]
ALL = ["device", "edge", "cloud"]


def _op(name: str, kind: str, configs: list[dict[str, Any]], tiers: list[str]) -> dict[str, Any]:
    return {"name": name, "kind": kind, "configs": configs, "tiers": tiers}


FAMILIES: dict[str, dict[str, Any]] = {
    "traffic": {
        "operators": [_op("detect", "detector", DET, ALL), _op("classify", "classifier", CLS, ALL),
                      _op("summarize", "llm", LLM, ["edge", "cloud"])],
        "edges": [["detect", "classify"], ["classify", "summarize"]],
    },
    "meeting": {
        "operators": [_op("vad", "voice-activity", DET, ALL), _op("asr", "speech", CLS, ALL),
                      _op("summary", "llm", LLM, ["edge", "cloud"]), _op("actions", "llm", LLM, ALL)],
        "edges": [["vad", "asr"], ["asr", "summary"], ["asr", "actions"]],
    },
    "security": {
        "operators": [_op("motion", "detector", DET, ALL), _op("classify", "classifier", CLS, ALL),
                      _op("alert", "llm", LLM, ALL)],
        "edges": [["motion", "classify"], ["motion", "alert"]],
    },
}  # fmt: skip
SLOS = {  # (latency s, minimum accuracy, cost cap $ per invocation)
    "latency": [0.12, 0.25, 0.6],
    "accuracy": [0.4, 0.6, 0.7],
    "cost": [2e-6, 1e-5, None],
}


def workload(n: int, seed: int) -> Workload:
    rng = random.Random(seed)
    pipelines = [{"name": name, "input_bytes": FRAME_BYTES, **body} for name, body in FAMILIES.items()]
    queries = []
    for i in range(n):
        slo = {"latency_s": rng.choice(SLOS["latency"]), "min_accuracy": rng.choice(SLOS["accuracy"])}
        cap = rng.choice(SLOS["cost"])
        if cap is not None:
            slo["max_cost_usd"] = cap
        queries.append({"id": f"q{i}", "pipeline": rng.choice(list(FAMILIES)), "rate": rng.choice([0.5, 1.0, 2.0]),
                        "slo": slo})  # fmt: skip
    return parse({"pipelines": pipelines, "queries": queries}, "benchmark workload")


def tiers_for(n: int) -> Tiers:
    return Tiers(
        {t: c * n for t, c in CAPACITY_PER_QUERY.items()},  # type: ignore[misc]
        {k: v[0] for k, v in LINKS.items()},  # type: ignore[misc]
        {k: v[1] for k, v in LINKS.items()},  # type: ignore[misc]
    )


def run_systems(w: Workload, tiers: Tiers, sampler: Callable, catalog: dict) -> dict[str, dict[str, Any]]:
    offered = sum(q.rate for q in w.queries)

    def row(sel: Selection, seconds: float, profiler: Profiler, search_steps: int) -> dict[str, Any]:
        assert within(sel, tiers.capacity), "a plan exceeded a tier's capacity"
        return {
            "goodput": sel.goodput / offered,
            "served": len(sel.chosen),
            "cost_usd_per_s": sel.cost_usd_s,
            "cost_usd_per_goodput": sel.cost_usd_s / sel.goodput if sel.goodput else None,
            "planning_s": seconds,
            "profiling_steps": profiler.steps,
            "search_steps": search_steps,
        }

    out: dict[str, dict[str, Any]] = {}
    variants: dict[str, tuple[dict[str, Any], frozenset | None, bool]] = {
        "circinus": ({}, None, True),
        "no_early_stop": ({"early_stop": False}, None, True),
        "no_reuse": ({}, None, False),
        "all_cloud": ({}, frozenset({"cloud"}), True),
        "all_edge": ({}, frozenset({"edge"}), True),
    }
    for name, (kw, allowed, reuse) in variants.items():
        prof = Profiler(sampler, **kw)
        t0 = time.perf_counter()
        sol = solve(w, catalog, tiers, prof, tiers_allowed=allowed, reuse=reuse)
        out[name] = row(sol.selection, time.perf_counter() - t0, prof, sol.search_steps)
    prof = Profiler(sampler, early_stop=False)
    t0 = time.perf_counter()
    sel, steps = greedy(w, catalog, tiers, prof)
    out["greedy"] = row(sel, time.perf_counter() - t0, prof, steps)
    if len(w.queries) <= EXHAUSTIVE_MAX:
        prof = Profiler(sampler, early_stop=False)
        t0 = time.perf_counter()
        sel, steps = exhaustive(w, catalog, tiers, prof)
        out["exhaustive"] = row(sel, time.perf_counter() - t0, prof, steps)
    return out


PLANNERS = ("greedy", "all_cloud", "all_edge")  # the baselines that plan differently (the rest are ablations)
BASELINES = (*PLANNERS, "no_early_stop", "no_reuse")
LIVE_SECONDS = {True: 5.0, False: 20.0}  # --quick or not


def live(seconds: float, console: Any) -> dict[str, Any]:
    """The traffic app's workload (``apps/traffic/workload.yaml``) on the cluster the app starts: a
    coordinator in front of a Pi-class camera box and a Jetson-class edge box (an emulated LAN and
    CPU quotas as root) and the cloud service; Circinus's plans against per-query greedy's, each
    streamed for ``seconds`` and measured end to end."""
    import tempfile
    from pathlib import Path

    from apps.traffic.app import SPEC, cluster_up, compare

    w = load(SPEC)
    with tempfile.TemporaryDirectory(prefix="edgeweave-bench-") as tmp, cluster_up(w, Path(tmp)) as started:
        out: dict[str, Any] = compare(w, started.attached, seconds, console)
    for o in out.values():
        o["slo_attainment"] = o["within_slo"] / max(o["frames"], 1)
        o["cost_usd_per_frame_within_slo"] = o["cost_usd"] / o["within_slo"] if o["within_slo"] else None
    return {**out, "seconds": seconds, "notice": started.notice}


def plot(results: dict[str, dict[str, dict[str, Any]]], measured_live: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted(results, key=int)
    systems = ["circinus", *BASELINES, "exhaustive"]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    names = ("circinus", "greedy")
    axes[3].bar(names, [measured_live[n]["slo_attainment"] for n in names], color=["C0", "C1"])
    axes[3].set_ylim(0, 1)
    axes[3].set_title(f"traffic app, live {measured_live['seconds']:.0f} s: frames within SLO", fontsize=9)
    for ax, key, title in zip(axes[:3], ("goodput", "cost_usd_per_goodput", "planning_s"),
                              ("SLO goodput (share of offered)", "$ per served invocation", "planning s (log)"),
                              strict=True):  # fmt: skip
        for s in systems:
            xs = [int(n) for n in ns if s in results[n] and results[n][s][key] is not None]
            ax.plot(xs, [results[str(n)][s][key] for n in xs], marker="o", label=s)
        ax.set_xscale("log")
        ax.set_xlabel("concurrent queries")
        ax.set_title(title, fontsize=9)
        if key == "planning_s":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("Circinus vs baselines: measured operators, simulated tiers", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, "10 and 100 queries, one seed").parse_args(argv)
    from rich.console import Console

    console = Console()
    sizes = (10, 100) if args.quick else (10, 100, 1000)
    seeds = (0,) if args.quick else (0, 1, 2)
    m = measure(workload(1, 0), TIER_SPECS)
    console.print(
        f"operators measured in {m.seconds:.1f} s; accuracy: { {k: round(v, 3) for k, v in m.accuracy.items()} }"
    )
    results: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {}
    for n in sizes:
        runs = [run_systems(workload(n, seed), tiers_for(n), m.sampler, m.catalog) for seed in seeds]
        merged = {s: {k: _median([r[s][k] for r in runs]) for k in runs[0][s]} for s in runs[0]}
        results[str(n)] = merged
        console.print(
            n, {s: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for s, r in merged.items()}
        )
        c = merged["circinus"]
        best = max(PLANNERS, key=lambda s: merged[s]["goodput"])
        summary[f"goodput_{n}"] = c["goodput"]
        summary[f"goodput_ratio_vs_best_baseline_{n}"] = c["goodput"] / max(merged[best]["goodput"], 1e-9)
        for s in PLANNERS:  # a baseline's $ per served invocation over Circinus's: above 1, Circinus is cheaper
            if c["cost_usd_per_goodput"] and merged[s]["cost_usd_per_goodput"]:
                summary[f"cost_ratio_vs_{s}_{n}"] = merged[s]["cost_usd_per_goodput"] / c["cost_usd_per_goodput"]
        summary[f"cost_ratio_vs_best_baseline_{n}"] = summary.get(f"cost_ratio_vs_{best}_{n}")
        summary[f"planning_s_{n}"] = c["planning_s"]
        summary[f"profiling_steps_saved_by_early_stop_{n}"] = (
            1 - c["profiling_steps"] / merged["no_early_stop"]["profiling_steps"]
        )
        summary[f"search_steps_saved_by_reuse_{n}"] = 1 - c["search_steps"] / merged["no_reuse"]["search_steps"]
        if "exhaustive" in merged:
            ex = merged["exhaustive"]
            summary[f"planning_speedup_vs_exhaustive_{n}"] = ex["planning_s"] / c["planning_s"]
            summary[f"goodput_vs_exhaustive_{n}"] = c["goodput"] / max(ex["goodput"], 1e-9)
    measured_live = live(LIVE_SECONDS[args.quick], console)
    for system in ("circinus", "greedy"):
        summary[f"live_slo_attainment_{system}"] = measured_live[system]["slo_attainment"]
        summary[f"live_cost_usd_per_frame_within_slo_{system}"] = measured_live[system]["cost_usd_per_frame_within_slo"]
    summary["live_frames_within_slo_ratio_vs_greedy"] = measured_live["circinus"]["within_slo"] / max(
        measured_live["greedy"]["within_slo"], 1
    )
    top = str(max(n for n in sizes if n <= EXHAUSTIVE_MAX))
    summary["planning_speedup_vs_exhaustive"] = summary[f"planning_speedup_vs_exhaustive_{top}"]
    summary["goodput_vs_exhaustive"] = summary[f"goodput_vs_exhaustive_{top}"]
    big = str(max(sizes))
    summary["goodput_ratio_vs_best_baseline"] = summary[f"goodput_ratio_vs_best_baseline_{big}"]
    summary["cost_ratio_vs_best_baseline"] = summary.get(f"cost_ratio_vs_best_baseline_{big}")
    figures = (
        "planning: operators (accuracy, latency, profiling) measured, tiers, prices and links simulated; "
        "live: the traffic app on real processes, operators profiled on them, frames timed end to end"
    )
    save_result("circinus", args.quick, summary, results=results, live=measured_live, accuracy=m.accuracy,
                seeds=list(seeds), tiers={t: vars(s) for t, s in TIER_SPECS.items()}, figures=figures)  # fmt: skip
    plot(results, measured_live, str(RESULTS / "circinus.png"))
    for k, v in summary.items():
        console.print(f"{k:>48}: {v:.4g}" if isinstance(v, float) else f"{k:>48}: {v}")
    return 0


def _median(values: list[Any]) -> Any:
    nums = [v for v in values if v is not None]
    return statistics.median(nums) if nums else None


if __name__ == "__main__":
    raise SystemExit(main())
