"""Tempo benchmark: SLO-aware scheduling vs five baselines and an upper bound, on every workload shape.

Workload: the Azure LLM conversation trace 2023 (CC-BY 4.0, Patel et al.,
Splitwise, ISCA 2024) or any CSV of the same columns (``--trace``), rewritten
into five shapes (:mod:`cloud.tempo.shapes`: as recorded, long prompt / short
answer, short prompt / long answer, and two bimodal mixes), lengths scaled to
the served tiny model's 512-token context; each arrival a chat request (TTFT
0.8-2 s, TBT 80-100 ms), a tool call (deadline 8-20 s) or an agent workflow
(2-4 stages, chains and fan-outs, due 8-20 s after its first call) in a 1:1:1
mix (:mod:`cloud.tempo.workload`); arrival times scaled to each offered load
(a multiple of the engine's saturated throughput on that shape).

1. Fit the simulator's iteration time on the real engine (weave-home-cloud,
   this machine) over batches drawn from every shape.
2. Per shape: its saturated throughput; the output-length bound (quantile
   forest) trained on the shape's first 40% and its coverage on the
   evaluation window; Tempo's workflow-graph store warmed on a training window.
3. Per shape and load, every policy on the same arrivals: FCFS, vLLM-style
   priority classes, EDF, SRTF on the predicted length, Autellix-style LAS,
   Tempo, and Tempo fed the true lengths (a labelled variant, not a bound);
   the oracle is a proven upper bound on any schedule's service gain
   (:mod:`cloud.tempo.bound`).  Service gain (useful tokens), service goodput
   (useful tokens per second of offered trace), SLO goodput (requests or
   workflows meeting their SLO), p99 TTFT per type, raw throughput.
4. Time Tempo's decision with 1,000 and 10,000 queued requests.
5. Serve a short slice of the recorded shape on the live engine with Tempo
   and with FCFS, and the same slice in the simulator, to check the ranking.

    python -m benchmarks.tempo [--quick] [--trace PATH]
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from benchmarks.results_io import RESULTS, parser, save_result
from cloud.engine.engine import LLMEngine
from cloud.engine.scheduler import FCFS, Policy, SeqView
from cloud.policies import policy_named
from cloud.tempo.bound import gain_bound
from cloud.tempo.gain import GainLedger
from cloud.tempo.length import LengthBound
from cloud.tempo.policy import Tempo
from cloud.tempo.remaining import BoundLengths, TrueLengths
from cloud.tempo.shapes import MIXED, SHAPES, Shape
from cloud.tempo.simulator import EngineShape, SimOutcome, simulate
from cloud.tempo.step_time import StepSample, StepTime, fit
from cloud.tempo.workflows import GraphLibrary
from cloud.tempo.workload import Call, Releases, mixed_workload
from edgeweave.config import EngineOptions
from edgeweave.data.traces import CREDIT, TraceRequest, load_trace
from edgeweave.errors import UsageError
from edgeweave.generation.sampling import SamplingParams
from edgeweave.wire.slo import SLO_TYPES

MODEL = "weave-home-cloud"
OPTIONS = EngineOptions(kv_cache_mb=64, max_num_seqs=16, max_batched_tokens=512, policy="fcfs")
BASELINES = ("fcfs", "priority", "edf", "srtf", "las")
MIN_ROWS = 60  # a trace shorter than this leaves too little to train the length bound on


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


def given_step_time(text: str) -> StepTime:
    """``--step-time BASE,TOKEN,SEQ,KEY``: four non-negative seconds."""
    try:
        terms = [float(x) for x in text.split(",")]
    except ValueError:
        terms = []
    if len(terms) != 4 or any(not x >= 0 for x in terms):
        raise UsageError("--step-time", f"{text!r} is not four non-negative numbers BASE,TOKEN,SEQ,KEY")
    return StepTime(*terms)


def engine_shape() -> EngineShape:
    eng = LLMEngine.load(MODEL, OPTIONS)
    return EngineShape(OPTIONS.max_num_seqs, OPTIONS.max_batched_tokens, eng.blocks.num_blocks, OPTIONS.block_size)


# --- 3. policies in the simulator ------------------------------------------------------------
POLICIES = (*BASELINES, "tempo", "tempo_true_lengths")
ORACLE = "oracle"  # the upper bound of cloud.tempo.bound, not a policy


def make(name: str, bound: LengthBound, calls: Sequence[Call], library: GraphLibrary) -> Policy:
    """A fresh policy object (Tempo's get their own copy of the warmed workflow-graph store)."""
    b, t = OPTIONS.max_num_seqs, OPTIONS.max_batched_tokens
    if name == "tempo_true_lengths":
        truth = {c.id: c.output_tokens for c in calls}
        return Tempo(TrueLengths(truth), b, t, library=copy.deepcopy(library), name=name)
    return policy_named(name, BoundLengths(bound), b, t, copy.deepcopy(library) if name == "tempo" else None)


def offered_span(calls: Sequence[Call]) -> float:
    starts = [c.arrival_s for c in calls if not c.after]
    return max(starts) - min(starts)


def at_rate(window: Sequence[TraceRequest], seed: int, out_tok_s: float) -> list[Call]:
    """The mixed workload on ``window`` (rows already shaped and scaled to the context) with
    arrival times scaled to offer ``out_tok_s`` generated tokens/s."""
    calls = mixed_workload(window, seed)
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


@dataclass
class ShapeRun:
    """One shape's figures: per load, per policy (and the oracle) the outcome row."""

    shape: str
    capacity_tok_s: float
    bound: LengthBound
    library: GraphLibrary
    window: list[TraceRequest]
    table: dict[float, dict[str, dict]]

    def ratio(self, load: float, of: str = "tempo") -> float:
        """``of``'s service gain over the best baseline's at ``load``."""
        row = self.table[load]
        return row[of]["service_gain"] / max(max(row[k]["service_gain"] for k in BASELINES), 1)

    def best_baseline(self, load: float) -> str:
        return max(BASELINES, key=lambda k: self.table[load][k]["service_gain"])


def run_shape(
    trace: Sequence[TraceRequest],
    shape: Shape,
    step: StepTime,
    engine: EngineShape,
    loads: Sequence[float],
    n_eval: int,
    seed: int,
    say: Callable[..., None] = print,
) -> ShapeRun:
    """Every policy and the oracle at every load on one shape of ``trace`` (the first 40% of
    the shaped rows train the length bound and warm the workflow store, the next ``n_eval + 1``
    are the evaluation window)."""
    rows = shape.transform(trace, seed)
    cut = int(len(rows) * 0.4)
    train, window = rows[:cut], rows[cut : cut + n_eval + 1]
    capacity = simulate(at_rate(window, seed, 1e9), FCFS(), engine, step).saturated_tok_s
    bound = LengthBound.fit(train, seed=seed)
    warm = Tempo(BoundLengths(bound), OPTIONS.max_num_seqs, OPTIONS.max_batched_tokens)
    simulate(at_rate(train[-min(len(train), n_eval) :], seed + 1, 0.7 * capacity), warm, engine, step)
    library = warm.workflows.library
    say(
        f"shape {shape.name} ({shape.doc}): saturated {capacity:.0f} tokens/s, length bound quantile {bound.quantile}"
        f" coverage {bound.coverage(window):.3f}, workflow graphs {len(library.graphs)}"
    )
    table: dict[float, dict[str, dict]] = {}
    for load in loads:
        calls = at_rate(window, seed, load * capacity)
        span = offered_span(calls)
        row = {name: outcome_row(simulate(calls, make(name, bound, calls, library), engine, step), span)
               for name in POLICIES}  # fmt: skip
        oracle = gain_bound(calls, step, engine)
        row[ORACLE] = {"service_gain": oracle, "service_goodput_tok_s": oracle / span}
        table[load] = row
    run = ShapeRun(shape.name, capacity, bound, library, window, table)
    for load in loads:
        row = table[load]
        say(
            f"  load {load}: "
            + ", ".join(f"{k} {v['service_goodput_tok_s']:.0f}" for k, v in row.items())
            + f"  | tempo/{run.best_baseline(load)} {run.ratio(load):.2f}"
            + f", tempo/oracle {row['tempo']['service_gain'] / max(row[ORACLE]['service_gain'], 1):.2f}"
        )
    return run


# --- 4. decision time -------------------------------------------------------------------------
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
        (full if policy.recomputed else cached).append(time.perf_counter() - t0)
    return statistics.median(full) * 1e3, statistics.median(cached) * 1e3


# --- 5. the live engine -----------------------------------------------------------------------
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
def plot(runs: Sequence[ShapeRun], loads: list[float], step: StepTime, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for ax, run in zip(axes.flat, runs, strict=False):
        for name in run.table[loads[0]]:
            style = {"lw": 2.5} if name == "tempo" else {"ls": "--", "color": "k"} if name == ORACLE else {}
            ax.plot(
                loads, [run.table[x][name]["service_goodput_tok_s"] for x in loads], marker="o", label=name, **style
            )
        ax.set_title(f"{run.shape} ({SHAPES[run.shape].doc})", fontsize=9)
        ax.set_xlabel("offered load (x saturated throughput)")
        ax.set_ylabel("service goodput, useful tokens/s")
    axes.flat[0].legend(fontsize=7)
    last = axes.flat[-1]
    for run in runs:
        last.plot(loads, [run.ratio(x) for x in loads], marker="o", label=run.shape)
    last.axhline(1.0, color="grey", lw=0.8)
    last.set_title("Tempo / best baseline", fontsize=9)
    last.set_xlabel("offered load (x saturated throughput)")
    last.legend(fontsize=7)
    fig.suptitle(f"Tempo vs baselines and the upper bound, simulated engine ({step.describe()})\n{CREDIT}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "fewer requests and loads", trace=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--step-time",
        metavar="BASE,TOKEN,SEQ,KEY",
        help="the iteration time model in seconds (fixed + per token + per sequence + per cached key) instead of"
        " fitting it on the real engine here (a loaded machine's fit is noise); e.g. 4.87e-3,125.5e-6,844e-6,3.1e-9",
    )
    args = ap.parse_args(argv)
    from rich.console import Console

    console = Console()
    say: Callable[..., None] = console.print
    try:
        trace = load_trace(args.trace)
        if len(trace) < MIN_ROWS:
            raise UsageError(args.trace, f"{len(trace)} requests; need at least {MIN_ROWS}")
        if args.step_time:
            given_step_time(args.step_time)
    except UsageError as e:
        console.print(f"{e}", markup=False)
        return 2
    n_eval = 300 if args.quick else 1200
    loads = [1.0, 2.0, 3.0] if args.quick else [0.5, 1.0, 1.5, 2.0, 3.0]
    head = trace[: int(len(trace) * 0.4)]

    if args.step_time:
        step, r2, outliers, samples = given_step_time(args.step_time), float("nan"), 0, []
        say(f"iteration time (given) = {step.describe()}")
    else:
        with console.status("1. timing real engine iterations"):
            mixed = [r for shape in SHAPES.values() for r in shape.transform(head, args.seed)]
            samples = measure_steps(mixed, 120 if args.quick else 400, args.seed)
        step, r2, outliers = fit(samples)
        say(f"iteration time = {step.describe()} (R^2 {r2:.3f}, {len(samples)} iterations, {outliers} outliers)")
    engine = engine_shape()

    runs: list[ShapeRun] = []
    for shape in SHAPES.values():
        with console.status(f"2-3. shape {shape.name}: {len(POLICIES)} policies and the oracle at {len(loads)} loads"):
            runs.append(run_shape(trace, shape, step, engine, loads, n_eval, args.seed, say))
    recorded = runs[0]
    bound, library, window = recorded.bound, recorded.library, recorded.window

    with console.status("4. timing Tempo's decision"):
        d1k = decision_ms(bound, 1000, args.seed, 3)
        d10k = decision_ms(bound, 10_000, args.seed, 3 if not args.quick else 1)
    say(
        "decision ms (full recompute / between recomputes): "
        f"1k {d1k[0]:.1f}/{d1k[1]:.2f}, 10k {d10k[0]:.1f}/{d10k[1]:.2f}"
    )

    live_load = loads[-1]
    horizon = 8.0 if args.quick else 20.0
    live_calls = at_rate(window, args.seed, live_load * recorded.capacity_tok_s)
    keep = {c.id.split(".")[0] for c in live_calls if not c.after and c.arrival_s <= horizon}
    live_calls = [c for c in live_calls if c.id.split(".")[0] in keep]  # whole workflows
    live_span = offered_span(live_calls)
    live: dict[str, dict] = {}
    sim_live: dict[str, dict] = {}
    for name in ("fcfs", "tempo"):
        with console.status(f"5. live engine: {name} on {len(live_calls)} calls"):
            ledger, ttft, tput = serve_live(live_calls, make(name, bound, live_calls, library))
        live[name] = outcome_row(ledger, live_span, ttft) | {"throughput_tok_s": tput}
        sim = simulate(live_calls, make(name, bound, live_calls, library), engine, step)
        sim_live[name] = outcome_row(sim, live_span)
        say(f"live {name}: {live[name]['service_gain']} useful tokens (simulated: {sim_live[name]['service_gain']})")

    top = recorded.table[loads[-1]]
    best = recorded.best_baseline(loads[-1])
    per_shape = {run.shape: min(run.ratio(x) for x in loads) for run in runs}
    summary = {
        "service_goodput_ratio_vs_best_baseline": recorded.ratio(loads[-1]),
        "best_baseline": best,
        "service_goodput_ratio_vs_fcfs": top["tempo"]["service_gain"] / max(top["fcfs"]["service_gain"], 1),
        "gap_to_oracle": 1.0 - top["tempo"]["service_gain"] / max(top[ORACLE]["service_gain"], 1),
        "throughput_ratio_vs_fcfs": top["tempo"]["throughput_tok_s"] / top["fcfs"]["throughput_tok_s"],
        "slo_goodput_ratio_vs_best_baseline": top["tempo"]["slo_met"]
        / max(max(top[k]["slo_met"] for k in BASELINES), 1),
        "decision_ms_1k": d1k[0],
        "decision_ms_10k": d10k[0],
        "decision_ms_10k_between_recomputes": d10k[1],
        "qrf_coverage": bound.coverage(window),
        "high_load": loads[-1],
        "live_load": live_load,
        "live_tempo_vs_fcfs_gain_ratio": live["tempo"]["service_gain"] / max(live["fcfs"]["service_gain"], 1),
        "sim_tempo_vs_fcfs_gain_ratio_same_slice": sim_live["tempo"]["service_gain"]
        / max(sim_live["fcfs"]["service_gain"], 1),
        "capacity_tok_s": recorded.capacity_tok_s,
        "requests_per_load": len(window),
        # every shape: the worst load's Tempo / best baseline, the overload one, the gap to the bound
        "service_goodput_ratio_vs_best_baseline_min_shape": min(per_shape.values()),
        "min_shape": min(per_shape, key=per_shape.__getitem__),
        **{f"service_goodput_ratio_vs_best_baseline_{k}": v for k, v in per_shape.items()},
        **{f"service_goodput_ratio_vs_best_baseline_{r.shape}_overload": r.ratio(loads[-1]) for r in runs},
        **{
            f"gap_to_oracle_{r.shape}": 1.0
            - r.table[loads[-1]]["tempo"]["service_gain"] / max(r.table[loads[-1]][ORACLE]["service_gain"], 1)
            for r in runs
        },
        "mixed_shapes": ",".join(MIXED),
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
        engine=engine.__dict__,
        shapes={
            r.shape: {
                "transform": SHAPES[r.shape].doc,
                "capacity_tok_s": r.capacity_tok_s,
                "qrf_coverage": r.bound.coverage(r.window),
                "loads": {str(k): v for k, v in r.table.items()},
            }
            for r in runs
        },
        live=live,
        live_simulated=sim_live,
    )
    plot(runs, loads, step, str(RESULTS / "tempo.png"))
    for run in runs:
        say(f"{run.shape:>14}: tempo / best baseline " + "  ".join(f"{x}: {run.ratio(x):.2f}" for x in loads))
    for k, v in summary.items():
        say(f"{k:>58}: {v:.4g}" if isinstance(v, float) else f"{k:>58}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
