"""Cloud engine benchmark: the engine against llama.cpp's own server under a load sweep past
saturation, and continuous (iteration-level) vs static (request-level) batching, in one run.

Workload: a window of consecutive requests of the Azure LLM conversation trace 2023 (CC-BY 4.0,
Patel et al., Splitwise, ISCA 2024), or any ``--trace`` with the same columns.  Prompt and output
lengths are scaled into the tiny weave-home-cloud model's 512-token context; prompts are random
token ids (the same ids for every server); every request generates exactly its output length
(end-of-turn ignored, greedy).

**Against a peer** (what a user would run instead on this machine): the engine behind its own
OpenAI-compatible server (``edgeweave cloud serve``, FCFS, batch of 16) and llama.cpp's
``llama-server`` (:mod:`benchmarks.llama_server`) on the GGUF export of the same checkpoint (F32
weights), 16 parallel slots (continuous batching), the same compute threads.  Both are driven by
the same open-loop streaming client (:mod:`benchmarks.http_replay`) with the trace's arrival
pattern scaled to each load of the sweep; a load is a multiple of the higher of the two servers'
measured throughput with every request of the window sent at once (a measure of each one's
capacity on this workload; on a short window the faster server can exceed it with staggered
arrivals, which ``saturated`` then shows).  The headline is taken at **saturation: the lowest
load from which neither server's throughput rises by 10% or more at the next load** (the highest
load if that never happens; ``saturated`` says which); the ratios at the highest load are
reported beside it.

**Continuous vs static**, in process at ``--load`` times the engine's own full-batch throughput:

- continuous: requests join the running batch at the next iteration (the engine as it serves);
- static: a batch is formed only when the engine is idle, from the requests that have arrived (up
  to the same batch size), and none joins until the whole batch has finished (the request-level
  batching Orca and vLLM improve on).

Reports throughput (generated tokens / makespan), TTFT and TBT p50/p99.

``--quick``: 24 requests, loads 0.5 / 1.5 / 3 (the full run: 160 requests, loads 0.25 to 3).

    python -m benchmarks.engine [--quick] [--trace PATH] [--load X] [--loads X,Y,..] [--threads N]

Needs the llama-server binary: ``make llama-server`` (``make bench`` builds it).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from benchmarks.http_replay import LoadResult, TimedRequest
from benchmarks.http_replay import replay as replay_http
from benchmarks.llama_server import LlamaServer, LlamaServerOptions, find_binary
from benchmarks.results_io import RESULTS, parser, save_result
from cloud.engine.engine import LLMEngine
from cloud.tempo.workload import fit_to_context
from edgeweave.cluster.cluster_files import cloud_toml, write
from edgeweave.cluster.processes import spawn
from edgeweave.config import EngineOptions
from edgeweave.data.traces import CREDIT, load_trace
from edgeweave.errors import EdgeweaveError, UsageError
from edgeweave.export.cache import runtime_file
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.registry import resolve_checkpoint

MODEL = "weave-home-cloud"
MAX_SEQS = 16
MAX_BATCHED_TOKENS = 512
KV_CACHE_MB = 64.0
LOADS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)  # multiples of the higher all-at-once throughput of the two servers
QUICK_LOADS = (0.5, 1.5, 3.0)
RISE = 0.10  # a throughput that grows less than this from one load to the next has stopped rising
KEY = "engine-bench-key"


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
    n = min(n, len(trace))
    start = rng.randrange(0, len(trace) - n + 1)
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
        MODEL,
        EngineOptions(
            kv_cache_mb=KV_CACHE_MB, max_num_seqs=MAX_SEQS, max_batched_tokens=MAX_BATCHED_TOKENS, policy="fcfs"
        ),
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


# --- the load sweep against llama.cpp's server ------------------------------------------------


def load_sweep(quick: bool, given: str | None = None) -> tuple[float, ...]:
    """The loads to run, ascending: ``given`` (comma-separated, from ``--loads``) or the default set."""
    if given is None:
        return QUICK_LOADS if quick else LOADS
    try:
        loads = sorted({float(x) for x in given.split(",") if x.strip()})
    except ValueError:
        raise UsageError("--loads", f"{given!r} is not a comma-separated list of numbers") from None
    if len(loads) < 2 or loads[0] <= 0:
        raise UsageError("--loads", f"{given!r}: need at least two distinct loads, all above 0")
    return tuple(loads)


def arrivals(trace_times: Sequence[float], rate_req_s: float) -> list[float]:
    """The trace's arrival pattern (times from its first request) stretched to ``rate_req_s`` on average."""
    span = trace_times[-1] - trace_times[0]
    if span <= 0:  # all at once in the trace: spread them evenly
        return [i / rate_req_s for i in range(len(trace_times))]
    scale = (len(trace_times) / rate_req_s) / span
    return [(t - trace_times[0]) * scale for t in trace_times]


def saturation_index(engine_tok_s: Sequence[float], peer_tok_s: Sequence[float], rise: float = RISE) -> int:
    """The lowest load from which neither server's throughput rises by ``rise`` or more at the next
    load (both at capacity, so the ratio compares capacities, not arrivals); the last if none."""
    for i in range(len(engine_tok_s) - 1):
        if engine_tok_s[i + 1] < (1 + rise) * engine_tok_s[i] and peer_tok_s[i + 1] < (1 + rise) * peer_tok_s[i]:
            return i
    return len(engine_tok_s) - 1


@dataclass(frozen=True)
class SweepPoint:
    load: float
    offered_req_s: float
    engine: LoadResult
    llamacpp_server: LoadResult


def peer_summary(points: Sequence[SweepPoint]) -> dict[str, float | bool]:
    """The headline ratios (engine / llama-server) at saturation and at the highest load."""
    i = saturation_index(
        [p.engine.throughput_tok_s for p in points], [p.llamacpp_server.throughput_tok_s for p in points]
    )
    sat, top = points[i], points[-1]

    def ratios(p: SweepPoint, suffix: str) -> dict[str, float]:
        e, ll = p.engine, p.llamacpp_server
        return {
            f"throughput_ratio_vs_llamacpp_server{suffix}": e.throughput_tok_s / ll.throughput_tok_s,
            f"ttft_p99_ratio_vs_llamacpp_server{suffix}": e.ttft_p99_s / ll.ttft_p99_s,
            f"tbt_p99_ratio_vs_llamacpp_server{suffix}": e.tbt_p99_s / ll.tbt_p99_s,
        }

    return {
        **ratios(sat, ""),
        "saturation_load": sat.load,
        "saturated": i < len(points) - 1,  # False: throughput still rose at the top of the sweep
        "engine_server_tok_s_at_saturation": sat.engine.throughput_tok_s,
        "llamacpp_server_tok_s_at_saturation": sat.llamacpp_server.throughput_tok_s,
        "engine_server_ttft_p99_s_at_saturation": sat.engine.ttft_p99_s,
        "llamacpp_server_ttft_p99_s_at_saturation": sat.llamacpp_server.ttft_p99_s,
        **ratios(top, "_max_load"),
        "max_load": top.load,
    }


def timed(reqs: Sequence[Req], times: Sequence[float]) -> list[TimedRequest]:
    return [TimedRequest(t, tuple(r.prompt), r.output_tokens) for r, t in zip(reqs, times, strict=True)]


def engine_config(workdir: Path) -> Path:
    engine_opts = f'max_num_seqs = {MAX_SEQS}\nmax_batched_tokens = {MAX_BATCHED_TOKENS}\npolicy = "fcfs"\n'
    return write(workdir / "cloud.toml", cloud_toml(MODEL, KEY, KV_CACHE_MB, engine_opts))


def sweep(
    reqs: Sequence[Req],
    loads: Sequence[float],
    threads: int,
    context: int,
    binary: Path,
    workdir: Path,
    say: Callable[[str], object],
) -> tuple[list[SweepPoint], dict[str, float]]:
    """Both servers up side by side; at each load the engine's server, then llama-server, serve the
    same timed requests (interleaved, so a drift in the machine's background load hits both)."""
    gguf = runtime_file(resolve_checkpoint(MODEL), "gguf")
    peer_opts = LlamaServerOptions(MAX_SEQS, context, threads, MAX_BATCHED_TOKENS)
    # torch's intra-op pool follows OMP_NUM_THREADS: the engine computes on as many threads as the peer
    ours = spawn("engine", ["cloud", "serve", "--config", str(engine_config(workdir))], workdir / "engine.log",
                 env={"OMP_NUM_THREADS": str(threads)})  # fmt: skip
    try:
        with LlamaServer(binary, gguf, peer_opts, workdir / "llama-server.log") as peer:
            ours.wait_ready(180)
            peer.wait_ready(120)
            servers = {"engine": ours.url, "llamacpp_server": peer.url}
            warm = [TimedRequest(0.0, tuple(reqs[0].prompt[:8]), 4)]
            burst = timed(reqs, [0.0] * len(reqs))  # the whole trace at once: the top of any load
            at_once: dict[str, float] = {}
            for name, url in servers.items():
                replay_http(url, MODEL, KEY, warm)
                at_once[name] = replay_http(url, MODEL, KEY, burst).throughput_tok_s
            ref = max(at_once.values())
            mean_out = statistics.mean(r.output_tokens for r in reqs)
            trace_times = [r.arrival_s for r in reqs]
            points = []
            for load in loads:
                rate = load * ref / mean_out
                work = timed(reqs, arrivals(trace_times, rate))
                got = {}
                for name, url in servers.items():
                    got[name] = replay_http(url, MODEL, KEY, work)
                    r = got[name]
                    say(f"load {load:g} ({rate:.2f} req/s) {name:>15}: {r.throughput_tok_s:7.1f} tok/s, "
                        f"TTFT p99 {r.ttft_p99_s:.3f} s, TBT p99 {r.tbt_p99_s:.3f} s")  # fmt: skip
                points.append(SweepPoint(load, rate, got["engine"], got["llamacpp_server"]))
    finally:
        ours.stop()
    return points, {f"{k}_all_at_once_tok_s": v for k, v in at_once.items()}


# --- report -------------------------------------------------------------------------------


def plot(
    points: Sequence[SweepPoint], saturation: float, ttfts: dict[str, list[float]], tput: dict[str, float], path: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    loads = [p.load for p in points]
    panels = (
        ("throughput_tok_s", "generated tokens/s", False),
        ("ttft_p99_s", "TTFT p99, s", True),
        ("tbt_p99_s", "TBT p99, s", True),
    )
    for ax, (attr, title, log) in zip(axes.flat, panels, strict=False):
        for who, label in (("engine", "edgeweave engine"), ("llamacpp_server", "llama.cpp server")):
            ax.plot(loads, [getattr(getattr(p, who), attr) for p in points], marker="o", label=label)
        ax.set_xlabel("offered load (x the faster server's all-at-once throughput)")
        ax.axvline(saturation, color="grey", linestyle=":", label="saturation")
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        ax.legend()
    a = axes.flat[3]
    for name, xs in ttfts.items():
        xs = sorted(xs)
        a.plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=f"{name} ({tput[name]:.0f} tok/s)")
    a.set_xlabel("TTFT, s (in process, continuous vs static batching)")
    a.set_ylabel("fraction of requests")
    a.set_xscale("log")
    a.legend()
    fig.suptitle(f"{MODEL}: edgeweave engine vs llama.cpp server, arrivals from {CREDIT}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "fewer requests and loads", trace=True)
    ap.add_argument("--load", type=float, default=1.0, help="continuous vs static: load as a fraction of capacity")
    ap.add_argument("--loads", help="the sweep's loads, comma-separated (multiples of the faster server's capacity)")
    ap.add_argument("--threads", type=int, help="compute threads of each server (default: torch's, all cores)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        return run(args, Console(width=120))
    except EdgeweaveError as e:
        print(f"benchmarks.engine: {e}", file=sys.stderr)
        return 2


def say(console: Console, line: str) -> None:
    console.print(line)
    console.file.flush()  # a run's progress shows as it goes, also when its output is a file


def run(args: argparse.Namespace, console: Console) -> int:
    import torch

    if args.load <= 0:
        raise UsageError("--load", f"{args.load} must be above 0")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads", f"{args.threads} must be at least 1")
    loads = load_sweep(args.quick, args.loads)
    binary = find_binary()  # before anything runs: a missing peer is a setup step to name at once
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    reqs = workload(args.trace, 24 if args.quick else 160, args.seed)
    trace_times = [r.arrival_s for r in reqs]
    with console.status("measuring the engine's full-batch throughput"):
        cap = capacity_tok_s(reqs)
    rate = args.load * cap / statistics.mean(r.output_tokens for r in reqs)
    for r, t in zip(reqs, arrivals(trace_times, rate), strict=True):
        r.arrival_s = t
    results: dict[str, dict[str, float]] = {}
    ttfts: dict[str, list[float]] = {}
    for name, static in (("continuous", False), ("static", True)):
        with console.status(f"{name} batching: {len(reqs)} requests at {rate:.2f} req/s"):
            makespan = replay(reqs, static)
        tokens = sum(len(r.token_times) for r in reqs)
        results[name] = {"throughput_tok_s": tokens / makespan, "makespan_s": makespan, **latencies(reqs)}
        ttfts[name] = [r.token_times[0] - r.arrival_s for r in reqs]
        say(console, f"{name}: { ({k: round(v, 4) for k, v in results[name].items()}) }")
    for r, t in zip(reqs, trace_times, strict=True):
        r.arrival_s = t
    context = engine().context_length
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        points, at_once = sweep(reqs, loads, threads, context, binary, Path(tmp), lambda line: say(console, line))
    c, s = results["continuous"], results["static"]
    summary = {
        **peer_summary(points),
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
        **at_once,
        "threads": threads,
    }
    sweep_rows = [
        {"load": p.load, "offered_req_s": p.offered_req_s, "engine": asdict(p.engine),
         "llamacpp_server": asdict(p.llamacpp_server)}
        for p in points
    ]  # fmt: skip
    save_result(
        "engine", args.quick, summary, trace=str(args.trace), credit=CREDIT, load=args.load, modes=results,
        sweep=sweep_rows, peer={"binary": str(binary), "slots": MAX_SEQS, "threads": threads},
    )  # fmt: skip
    plot(
        points,
        float(summary["saturation_load"]),
        ttfts,
        {k: v["throughput_tok_s"] for k, v in results.items()},
        str(RESULTS / "engine.png"),
    )
    for k, v in summary.items():
        console.print(f"{k:>48}: {v:.4g}" if isinstance(v, float) else f"{k:>48}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
