"""Cloud engine benchmark: continuous (iteration-level) batching vs static
(request-level) batching on the same engine, one run, Azure-trace arrivals.

Workload: a window of consecutive requests of the Azure LLM conversation trace
2023 (CC-BY 4.0, Patel et al., Splitwise, ISCA 2024).  Their prompt and output
lengths are scaled to the tiny weave-home-cloud model's 512-token context and
their arrival times are scaled so the offered load is ``--load`` times the
throughput this machine measured for the engine with a full batch (measured
first, in the same run).  Every request generates exactly its output length
(end-of-turn ignored).

- **continuous**: requests join the running batch at the next iteration (the
  engine as it serves, FCFS policy);
- **static**: the same engine, but a batch is formed only when the engine is
  idle, from the requests that have arrived (up to the same batch size), and
  none joins until the whole batch has finished (request-level batching, the
  baseline Orca and vLLM improve on).

Reports throughput (generated tokens / makespan), TTFT and TBT p50/p99.

    python -m benchmarks.engine [--quick] [--trace PATH] [--load X]
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from benchmarks.results_io import RESULTS, parser, save_result
from cloud.engine.engine import LLMEngine
from cloud.tempo.workload import fit_to_context
from edgeweave.config import EngineOptions
from edgeweave.data.traces import CREDIT, load_trace
from edgeweave.generation.sampling import SamplingParams

MODEL = "weave-home-cloud"
MAX_SEQS = 16


@dataclass
class Req:
    id: str
    arrival_s: float
    prompt: list[int]
    output_tokens: int
    token_times: list[float] = field(default_factory=list)


def workload(trace_path: str, n: int, seed: int) -> list[Req]:
    trace = load_trace(trace_path)
    rng = random.Random(seed)
    start = rng.randrange(0, len(trace) - n)
    window = trace[start : start + n]
    t0 = window[0].arrival_s
    reqs = []
    for i, r in enumerate(window):
        prompt_len, out_len = fit_to_context(r)
        prompt = [rng.randrange(8, 264) for _ in range(prompt_len)]
        reqs.append(Req(f"r{i}", r.arrival_s - t0, prompt, out_len))
    return reqs


def engine() -> LLMEngine:
    return LLMEngine.load(
        MODEL, EngineOptions(kv_cache_mb=64, max_num_seqs=MAX_SEQS, max_batched_tokens=512, policy="fcfs")
    )


def capacity_tok_s(reqs: list[Req]) -> float:
    """Generated tokens/s of the engine with a full batch of these requests."""
    eng = engine()
    batch = reqs[:MAX_SEQS]
    for r in batch:
        eng.add_request(r.id, r.prompt, SamplingParams(max_tokens=r.output_tokens, ignore_eos=True))
    t0 = time.perf_counter()
    n = 0
    while eng.has_work():
        n += len(eng.step())
    return n / (time.perf_counter() - t0)


def replay(reqs: list[Req], static: bool) -> float:
    """Serve ``reqs`` at their arrival times; returns the makespan in seconds."""
    eng = engine()
    pending = sorted(reqs, key=lambda r: r.arrival_s)
    by_id = {r.id: r for r in reqs}
    for r in reqs:
        r.token_times = []
    t0 = time.perf_counter()
    while pending or eng.has_work():
        now = time.perf_counter() - t0
        if not static or not eng.has_work():
            while pending and pending[0].arrival_s <= now and (not static or len(eng.seqs) < MAX_SEQS):
                r = pending.pop(0)
                eng.add_request(r.id, r.prompt, SamplingParams(max_tokens=r.output_tokens, ignore_eos=True))
        if not eng.has_work():
            time.sleep(max(0.0, pending[0].arrival_s - (time.perf_counter() - t0)))
            continue
        for out in eng.step():
            by_id[out.request_id].token_times.append(time.perf_counter() - t0)
    return time.perf_counter() - t0


def latencies(reqs: list[Req]) -> dict[str, float]:
    ttft = [r.token_times[0] - r.arrival_s for r in reqs]
    tbt = [b - a for r in reqs for a, b in zip(r.token_times, r.token_times[1:], strict=False)]
    return {
        "ttft_p50_s": float(np.percentile(ttft, 50)),
        "ttft_p99_s": float(np.percentile(ttft, 99)),
        "tbt_p50_s": float(np.percentile(tbt, 50)),
        "tbt_p99_s": float(np.percentile(tbt, 99)),
    }


def plot(ttfts: dict[str, list[float]], tput: dict[str, float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, xs in ttfts.items():
        xs = sorted(xs)
        a.plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=name)
    a.set_xlabel("TTFT, s")
    a.set_ylabel("fraction of requests")
    a.set_xscale("log")
    a.legend()
    b.bar(list(tput), list(tput.values()), color=["tab:blue", "tab:orange"])
    b.set_title("generated tokens/s")
    fig.suptitle(f"{MODEL} engine, Azure conversation trace arrivals ({CREDIT})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "fewer requests", trace=True)
    ap.add_argument("--load", type=float, default=1.0, help="offered load as a fraction of measured capacity")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from rich.console import Console

    console = Console()
    reqs = workload(args.trace, 48 if args.quick else 160, args.seed)
    with console.status("measuring the engine's full-batch throughput"):
        cap = capacity_tok_s(reqs)
    mean_out = statistics.mean(r.output_tokens for r in reqs)
    rate = args.load * cap / mean_out  # requests/s
    span = reqs[-1].arrival_s or 1.0
    scale = (len(reqs) / rate) / span
    for r in reqs:
        r.arrival_s *= scale
    results: dict[str, dict[str, float]] = {}
    ttfts: dict[str, list[float]] = {}
    for name, static in (("continuous", False), ("static", True)):
        with console.status(f"{name} batching: {len(reqs)} requests at {rate:.2f} req/s"):
            makespan = replay(reqs, static)
        tokens = sum(len(r.token_times) for r in reqs)
        results[name] = {"throughput_tok_s": tokens / makespan, "makespan_s": makespan, **latencies(reqs)}
        ttfts[name] = [r.token_times[0] - r.arrival_s for r in reqs]
        console.print(name, {k: round(v, 4) for k, v in results[name].items()})
    c, s = results["continuous"], results["static"]
    summary = {
        "continuous_vs_static_throughput_ratio": c["throughput_tok_s"] / s["throughput_tok_s"],
        "ttft_p99_s": c["ttft_p99_s"],
        "tbt_p99_s": c["tbt_p99_s"],
        "ttft_p50_s": c["ttft_p50_s"],
        "tbt_p50_s": c["tbt_p50_s"],
        "static_ttft_p99_s": s["ttft_p99_s"],
        "static_tbt_p99_s": s["tbt_p99_s"],
        "continuous_vs_static_ttft_p99_ratio": c["ttft_p99_s"] / s["ttft_p99_s"],
        "capacity_tok_s": cap,
        "offered_req_s": rate,
        "requests": len(reqs),
    }
    save_result("engine", args.quick, summary, trace=CREDIT, load=args.load, modes=results)
    plot(ttfts, {k: v["throughput_tok_s"] for k, v in results.items()}, str(RESULTS / "engine.png"))
    for k, v in summary.items():
        console.print(f"{k:>40}: {v:.4g}" if isinstance(v, float) else f"{k:>40}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
