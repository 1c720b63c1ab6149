"""Tempo benchmark: SLO-aware scheduling vs six policies on the same arrivals, in one run.

Workload: the Azure LLM conversation trace 2023 (CC-BY 4.0, Patel et al.,
Splitwise, ISCA 2024), each arrival a chat request (TTFT 0.8-2 s, TBT
80-100 ms), a tool call (deadline 8-20 s) or an agent workflow (2-4 stages,
chains and fan-outs, due 8-20 s after its first call) in a 1:1:1 mix
(:mod:`cloud.tempo.workload`); lengths scaled to the served tiny model's
512-token context, arrival times scaled to each offered load (a multiple of
the engine's saturated throughput).

1. Fit the simulator's iteration time on the real engine (weave-home-cloud,
   this machine), and measure the saturated throughput it implies.
2. Train the output-length bound (quantile forest) on the trace's first 40%
   and measure its coverage on the evaluation window.
3. Warm Tempo's workflow-graph store by simulating a training window.
4. Simulate every policy at every load: FCFS, vLLM-style priority classes,
   EDF, SRTF on the predicted length, Autellix-style LAS, Tempo, and the
   oracle (Tempo with true lengths): service gain (useful tokens), service
   goodput (useful tokens per second of offered trace), SLO goodput (requests
   or workflows meeting their SLO), p99 TTFT per type, raw throughput.
5. Time Tempo's decision with 1,000 and 10,000 queued requests.
6. Serve a short slice on the live engine with Tempo and with FCFS, and the
   same slice in the simulator, to check that the ranking holds.

    python -m benchmarks.tempo [--quick] [--trace PATH]
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from benchmarks.results_io import RESULTS, parser, save_result
from cloud.engine.engine import LLMEngine
from cloud.engine.scheduler import FCFS, Policy, SeqView
from cloud.policies import policy_named
from cloud.tempo.gain import GainLedger
from cloud.tempo.length import LengthBound
from cloud.tempo.policy import Tempo
from cloud.tempo.remaining import BoundLengths, TrueLengths
from cloud.tempo.simulator import EngineShape, SimOutcome, simulate
from cloud.tempo.step_time import StepSample, StepTime, fit
from cloud.tempo.workflows import GraphLibrary
from cloud.tempo.workload import Call, Releases, fit_to_context, mixed_workload
from edgeweave.config import EngineOptions
from edgeweave.data.traces import CREDIT, TraceRequest, load_trace
from edgeweave.generation.sampling import SamplingParams
from edgeweave.wire.slo import SLO_TYPES

MODEL = "weave-home-cloud"
OPTIONS = EngineOptions(kv_cache_mb=64, max_num_seqs=16, max_batched_tokens=512, policy="fcfs")
BASELINES = ("fcfs", "priority", "edf", "srtf", "las")


def scaled(reqs: Sequence[TraceRequest]) -> list[TraceRequest]:
    return [TraceRequest(r.arrival_s, *fit_to_context(r)) for r in reqs]


# --- 1. the engine's iteration time ------------------------------------------------------------
def measure_steps(train: Sequence[TraceRequest], iterations: int, seed: int) -> list[StepSample]:
    """Real engine iterations over batches of every size: every 12 iterations the number of live
    requests moves to a new target (1 to the sequence cap), newcomers bringing prefill chunks."""
    eng = LLMEngine.load(MODEL, OPTIONS)
    rng = random.Random(seed)
    samples: list[StepSample] = []
    n = target = 0
    while len(samples) < iterations:
        if len(samples) % 12 == 0:
            target = rng.randint(1, OPTIONS.max_num_seqs)
        for sid in list(eng.seqs)[target:]:
            eng.abort(sid)
        while len(eng.seqs) < target:
            r = rng.choice(train)
            prompt = [rng.randrange(8, 264) for _ in range(r.prompt_tokens)]
            eng.add_request(f"s{n}", prompt, SamplingParams(max_tokens=r.output_tokens, ignore_eos=True))
            n += 1
        eng.step()
        if eng.last_step is not None:
            samples.append(eng.last_step)
    return samples[5:]  # the first iterations pay one-time warm-up


def engine_shape() -> EngineShape:
    eng = LLMEngine.load(MODEL, OPTIONS)
    return EngineShape(OPTIONS.max_num_seqs, OPTIONS.max_batched_tokens, eng.blocks.num_blocks, OPTIONS.block_size)


# --- 4. policies in the simulator ------------------------------------------------------------
POLICIES = ("fcfs", "priority", "edf", "srtf", "las", "tempo", "oracle")


def make(name: str, bound: LengthBound, calls: Sequence[Call], library: GraphLibrary) -> Policy:
    """A fresh policy object (Tempo's get their own copy of the warmed workflow-graph store)."""
    b, t = OPTIONS.max_num_seqs, OPTIONS.max_batched_tokens
    if name == "oracle":
        truth = {c.id: c.output_tokens for c in calls}
        return Tempo(TrueLengths(truth), b, t, library=copy.deepcopy(library), name="oracle")
    return policy_named(name, BoundLengths(bound), b, t, copy.deepcopy(library) if name == "tempo" else None)


def offered_span(calls: Sequence[Call]) -> float:
    starts = [c.arrival_s for c in calls if not c.after]
    return max(starts) - min(starts)


def at_rate(window: Sequence[TraceRequest], seed: int, out_tok_s: float) -> list[Call]:
    """The mixed workload with arrival times scaled to offer ``out_tok_s`` generated tokens/s."""
    calls = mixed_workload(scaled(window), seed)
    scale = sum(c.output_tokens for c in calls) / out_tok_s / offered_span(calls)
    return [replace(c, arrival_s=c.arrival_s * scale) for c in calls]


def outcome_row(o: SimOutcome | GainLedger, span: float, ttft: dict[str, list[float]] | None = None) -> dict:
    ledger = o.ledger if isinstance(o, SimOutcome) else o
    ttft = o.ttft_s if isinstance(o, SimOutcome) else ttft or {}
    gain = sum(ledger.gain.values())
    row = {
        "service_gain": gain,
        "service_goodput_tok_s": gain / span,
        "slo_goodput": sum(ledger.met.values()) / max(sum(ledger.judged.values()), 1),
        "slo_met": sum(ledger.met.values()),
        **{f"gain_{k}": ledger.gain[k] for k in SLO_TYPES},
        **{f"slo_goodput_{k}": ledger.met[k] / max(ledger.judged[k], 1) for k in SLO_TYPES},
        **{f"ttft_p99_{k}_s": float(np.percentile(v, 99)) for k, v in ttft.items() if v},
    }
    if isinstance(o, SimOutcome):
        row |= {"throughput_tok_s": o.throughput_tok_s, "preemptions": o.preemptions, "decision_s": o.decision_s}
    return row


# --- 5. decision time -------------------------------------------------------------------------
def queued_views(n: int, seed: int) -> list[SeqView]:
    rng = random.Random(seed)
    reqs = mixed_workload([TraceRequest(i * 0.01, rng.randrange(8, 320), rng.randrange(4, 160)) for i in range(n)])
    out = []
    for i, c in enumerate(reqs[:n]):
        g = rng.randrange(0, c.output_tokens) if i < OPTIONS.max_num_seqs else 0
        ctx = c.prompt_tokens + g
        state = "running" if i < OPTIONS.max_num_seqs else "waiting"
        computed = ctx - 1 if state == "running" else 0
        out.append(
            SeqView(
                c.id,
                c.arrival_s,
                state,
                ctx,
                computed,
                g,
                c.output_tokens,
                -(-computed // 16),
                0,
                c.prompt_tokens,
                c.slo,
            )  # fmt: skip
        )
    return out


def decision_ms(bound: LengthBound, n: int, seed: int, repeats: int) -> tuple[float, float]:
    """Median ms of a full Tempo decision (every priority recomputed, batch window chosen) and of
    an iteration between recomputes, with ``n`` sequences live; length predictions warm."""
    views = queued_views(n, seed)
    policy = Tempo(BoundLengths(bound), OPTIONS.max_num_seqs, OPTIONS.max_batched_tokens)
    policy.rank(views, 100.0)
    full, cached = [], []
    for i in range(repeats * policy.recompute_every):
        now = 100.0 + (i + 1) * 0.03
        t0 = time.perf_counter()
        policy.rank(views, now)
        (full if (i + 1) % policy.recompute_every == 0 else cached).append(time.perf_counter() - t0)
    return statistics.median(full) * 1e3, statistics.median(cached) * 1e3


# --- 6. the live engine -----------------------------------------------------------------------
def serve_live(calls: Sequence[Call], policy: Policy) -> tuple[GainLedger, dict[str, list[float]], float]:
    """Serve ``calls`` on the real engine in real time (workflow stages submitted as their
    dependencies finish); returns the ledger, TTFTs per type and tokens/s."""
    eng = LLMEngine.load(MODEL, OPTIONS, policy=policy)
    releases = Releases(calls)
    by_id = releases.by_id
    ready = sorted(((c.arrival_s, c.id) for c in releases.roots()), reverse=True)
    rng = random.Random(0)
    ledger = GainLedger()
    ttft: dict[str, list[float]] = {k: [] for k in SLO_TYPES}
    times: dict[str, list[float]] = {}
    arrived: dict[str, float] = {}
    t0 = time.monotonic()
    tokens = 0
    while ready or eng.has_work():
        now = time.monotonic()
        while ready and t0 + ready[-1][0] <= now:
            _, cid = ready.pop()
            c = by_id[cid]
            prompt = [rng.randrange(8, 264) for _ in range(c.prompt_tokens)]
            arrived[cid], times[cid] = now, []
            eng.add_request(cid, prompt, SamplingParams(max_tokens=c.output_tokens, ignore_eos=True), (), now, c.slo)
            ledger.arrive(c.slo, now)
        if not eng.has_work():
            time.sleep(max(0.0, t0 + ready[-1][0] - time.monotonic()))
            continue
        outs = eng.step()
        done = time.monotonic()
        for out in outs:
            times[out.request_id].append(done)
            tokens += 1
            if out.finish_reason is None:
                continue
            c = by_id[out.request_id]
            ledger.finish(c.slo, arrived[c.id], times[c.id])
            ttft[c.slo.type].append(times[c.id][0] - arrived[c.id])
            for child in releases.finished(c.id):
                ready.append((done - t0 + child.gap_s, child.id))
                ready.sort(reverse=True)
    return ledger, ttft, tokens / (time.monotonic() - t0)


# --- plot ---------------------------------------------------------------------------------------
def plot(loads: list[float], table: dict[float, dict[str, dict]], step: StepTime, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in table[loads[0]]:
        style = {"lw": 2.5} if name == "tempo" else {"ls": "--"} if name == "oracle" else {}
        a.plot(loads, [table[x][name]["service_goodput_tok_s"] for x in loads], marker="o", label=name, **style)
        b.plot(loads, [table[x][name]["slo_goodput"] for x in loads], marker="o", label=name, **style)
    a.set_xlabel("offered load (x saturated throughput)")
    a.set_ylabel("service goodput, useful tokens/s")
    b.set_xlabel("offered load (x saturated throughput)")
    b.set_ylabel("SLO goodput (fraction met)")
    a.legend(fontsize=8)
    fig.suptitle(f"Tempo vs baselines, simulated engine ({step.describe()})\n{CREDIT}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "fewer requests and loads", trace=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from rich.console import Console

    console = Console()
    say: Callable[..., None] = console.print
    trace = load_trace(args.trace)
    cut = int(len(trace) * 0.4)
    train, rest = scaled(trace[:cut]), trace[cut:]
    n_eval = 300 if args.quick else 1200
    loads = [1.0, 2.0, 3.0] if args.quick else [0.5, 1.0, 1.5, 2.0, 3.0]
    window = rest[: n_eval + 1]

    with console.status("1. timing real engine iterations"):
        samples = measure_steps(train, 120 if args.quick else 400, args.seed)
    step, r2, outliers = fit(samples)
    shape = engine_shape()
    saturated = simulate(at_rate(window, args.seed, 1e9), FCFS(), shape, step)
    capacity = saturated.throughput_tok_s
    say(f"iteration time = {step.describe()} (R^2 {r2:.3f}, {len(samples)} iterations, {outliers} outliers)")
    say(f"saturated throughput (simulated, FCFS): {capacity:.0f} tokens/s")

    with console.status("2. training the output-length bound"):
        bound = LengthBound.fit(train, seed=args.seed)
    coverage = bound.coverage(scaled(window))
    say(f"length bound: forest quantile {bound.quantile}, coverage on the evaluation window {coverage:.3f}")

    with console.status("3. warming the workflow-graph store"):
        warm = Tempo(BoundLengths(bound), OPTIONS.max_num_seqs, OPTIONS.max_batched_tokens)
        simulate(at_rate(train[-400:], args.seed + 1, 0.7 * capacity), warm, shape, step)
        library = warm.workflows.library
    say(f"workflow graphs stored: {len(library.graphs)}, medoids {len(library.medoids)}")

    table: dict[float, dict[str, dict]] = {}
    for load in loads:
        calls = at_rate(window, args.seed, load * capacity)
        span = offered_span(calls)
        table[load] = {}
        for policy in (make(name, bound, calls, library) for name in POLICIES):
            with console.status(f"4. load {load}: {policy.name} on {len(calls)} calls"):
                table[load][policy.name] = outcome_row(simulate(calls, policy, shape, step), span)
        row = table[load]
        best = max(BASELINES, key=lambda k: row[k]["service_gain"])
        say(
            f"load {load}: "
            + ", ".join(f"{k} {v['service_goodput_tok_s']:.0f} ({v['slo_goodput']:.2f})" for k, v in row.items())
            + f"  | tempo/{best} {row['tempo']['service_gain'] / max(row[best]['service_gain'], 1):.2f}"
        )

    with console.status("5. timing Tempo's decision"):
        d1k = decision_ms(bound, 1000, args.seed, 3)
        d10k = decision_ms(bound, 10_000, args.seed, 3 if not args.quick else 1)
    say(
        "decision ms (full recompute / between recomputes): "
        f"1k {d1k[0]:.1f}/{d1k[1]:.2f}, 10k {d10k[0]:.1f}/{d10k[1]:.2f}"
    )

    live_load = loads[-1]
    horizon = 8.0 if args.quick else 20.0
    live_calls = at_rate(window, args.seed, live_load * capacity)
    keep = {c.id.split(".")[0] for c in live_calls if not c.after and c.arrival_s <= horizon}
    live_calls = [c for c in live_calls if c.id.split(".")[0] in keep]  # whole workflows
    live_span = offered_span(live_calls)
    live: dict[str, dict] = {}
    sim_live: dict[str, dict] = {}
    for name in ("fcfs", "tempo"):
        with console.status(f"6. live engine: {name} on {len(live_calls)} calls"):
            ledger, ttft, tput = serve_live(live_calls, make(name, bound, live_calls, library))
        live[name] = outcome_row(ledger, live_span, ttft) | {"throughput_tok_s": tput}
        sim = simulate(live_calls, make(name, bound, live_calls, library), shape, step)
        sim_live[name] = outcome_row(sim, live_span)
        say(f"live {name}: {live[name]['service_gain']} useful tokens (simulated: {sim_live[name]['service_gain']})")

    top = table[loads[-1]]
    best = max(BASELINES, key=lambda k: top[k]["service_gain"])
    summary = {
        "service_goodput_ratio_vs_best_baseline": top["tempo"]["service_gain"] / max(top[best]["service_gain"], 1),
        "best_baseline": best,
        "service_goodput_ratio_vs_fcfs": top["tempo"]["service_gain"] / max(top["fcfs"]["service_gain"], 1),
        "gap_to_oracle": 1.0 - top["tempo"]["service_gain"] / max(top["oracle"]["service_gain"], 1),
        "throughput_ratio_vs_fcfs": top["tempo"]["throughput_tok_s"] / top["fcfs"]["throughput_tok_s"],
        "slo_goodput_ratio_vs_best_baseline": top["tempo"]["slo_met"]
        / max(max(top[k]["slo_met"] for k in BASELINES), 1),
        "decision_ms_1k": d1k[0],
        "decision_ms_10k": d10k[0],
        "decision_ms_10k_between_recomputes": d10k[1],
        "qrf_coverage": coverage,
        "high_load": loads[-1],
        "live_load": live_load,
        "live_tempo_vs_fcfs_gain_ratio": live["tempo"]["service_gain"] / max(live["fcfs"]["service_gain"], 1),
        "sim_tempo_vs_fcfs_gain_ratio_same_slice": sim_live["tempo"]["service_gain"]
        / max(sim_live["fcfs"]["service_gain"], 1),
        "capacity_tok_s": capacity,
        "requests_per_load": len(window),
    }
    save_result(
        "tempo",
        args.quick,
        summary,
        trace=CREDIT,
        step_time={
            "model": step.describe(),
            "r2": r2,
            "outliers": outliers,
            "samples": len(samples),
            "coefficients": step.__dict__,
        },  # fmt: skip
        engine=shape.__dict__,
        loads={str(k): v for k, v in table.items()},
        live=live,
        live_simulated=sim_live,
    )
    plot(loads, table, step, str(RESULTS / "tempo.png"))
    for k, v in summary.items():
        say(f"{k:>45}: {v:.4g}" if isinstance(v, float) else f"{k:>45}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
