"""Device backends benchmark: TTFT, prefill and decode tokens/s, peak memory.

Runs weave-home-device and weave-home-cloud on torch eager, llama.cpp and
ExecuTorch (XNNPACK for the linears, ExecuTorch's KV-cache and SDPA kernels
for attention), each backend in its own subprocess so peak resident memory is
that backend's alone, all with the same thread count, the same prompts and a
fixed number of decoded tokens (end-of-turn ignored).  ``torch-batched`` is
the torch backend decoding all the prompts at once, one KV-cache slot each
(``forward_rows``); its decode tokens/s counts every slot's tokens.  Also
measures each model's exact match on held-out smart-home commands (run on
llama.cpp for speed; the parity tests show its greedy output equals torch's).
Prints a table with ratios against torch eager and llama.cpp (the headline:
ExecuTorch's decode tokens/s over llama.cpp's on the same model) and writes
``benchmarks/results/backends.json`` (flat ``summary``) and ``backends.png``.

    python -m benchmarks.backends [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.results_io import RESULTS, parser, save_result

MODELS = ("weave-home-device", "weave-home-cloud")
KINDS = ("torch", "llamacpp", "executorch", "torch-batched")
SYSTEM_PROMPT = (
    "You control a home with rooms kitchen, living room, bedroom, bathroom, office, garage, hallway, dining room, "
    "kids room and basement; lights, thermostats, door locks, blinds, fans and speakers. Answer with tool calls."
)
COMMANDS = (
    "dim the kitchen lights to 30% and lock the front door",
    "make it 21 degrees in the office",
    "play jazz in the bedroom, then close the living room blinds",
    "set the garage fan to high",
)


def worker(kind: str, model: str, rounds: int, decode_tokens: int, threads: int) -> dict[str, Any]:
    """Runs inside the subprocess: load one backend, time the fixed workload."""
    from edgeweave.generation.backend import peak_rss_mb
    from edgeweave.generation.backends import load_backend
    from edgeweave.generation.sampling import SamplingParams

    if kind == "torch-batched":
        return batched_worker(model, rounds, decode_tokens, threads)
    t0 = time.perf_counter()
    backend = load_backend(kind, model, threads=threads)
    load_s = time.perf_counter() - t0
    params = SamplingParams(max_tokens=decode_tokens, ignore_eos=True)
    prompts = _prompts(backend.tokenizer)
    backend.generate(prompts[0], params)  # warm-up
    ttft, prefill, decode = [], [], []
    for _ in range(rounds):
        for ids in prompts:
            s = backend.generate(ids, params).stats
            ttft.append(s.ttft_s)
            prefill.append(s.prefill_tok_s)
            decode.append(s.decode_tok_s)
    backend.close()
    return {
        "backend": kind,
        "model": model,
        "load_s": load_s,
        "prompt_tokens": statistics.median(len(p) for p in prompts),
        "ttft_ms": 1000 * statistics.median(ttft),
        "prefill_tok_s": statistics.median(prefill),
        "decode_tok_s": statistics.median(decode),
        "peak_rss_mb": peak_rss_mb(),
        "samples": len(ttft),
    }


def _prompts(tokenizer: Any) -> list[list[int]]:
    from edgeweave.models.tokenizer import ChatMessage

    return [tokenizer.render_chat([ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", c)]) for c in COMMANDS]


def batched_worker(model: str, rounds: int, decode_tokens: int, threads: int) -> dict[str, Any]:
    """All prompts at once on the torch backend, one slot each: one forward_rows call
    prefills them, then each step decodes every slot's next (greedy) token in one call."""
    from device.backends.torch_backend import load
    from edgeweave.generation.backend import BatchRow, peak_rss_mb
    from edgeweave.models.registry import resolve_checkpoint

    t0 = time.perf_counter()
    backend = load(resolve_checkpoint(model), threads, slots=len(COMMANDS))
    load_s = time.perf_counter() - t0
    prompts = _prompts(backend.tokenizer)

    def one_round() -> tuple[float, float]:
        start = time.perf_counter()
        logits = backend.forward_rows([BatchRow(slot, ids, 0) for slot, ids in enumerate(prompts)])
        prefill_s = time.perf_counter() - start
        lengths = [len(ids) for ids in prompts]
        start = time.perf_counter()
        for _ in range(decode_tokens - 1):  # the first token comes from the prefill logits
            rows = [BatchRow(s, [int(row.argmax())], lengths[s]) for s, row in enumerate(logits)]
            logits = backend.forward_rows(rows)
            lengths = [n + 1 for n in lengths]
        return prefill_s, time.perf_counter() - start

    one_round()  # warm-up
    times = [one_round() for _ in range(rounds)]
    prefill_s = statistics.median(p for p, _ in times)
    decode_s = statistics.median(d for _, d in times)
    return {
        "backend": "torch-batched",
        "model": model,
        "load_s": load_s,
        "prompt_tokens": statistics.median(len(p) for p in prompts),
        "ttft_ms": 1000 * prefill_s,  # every slot's first token comes from the one prefill call
        "prefill_tok_s": sum(len(p) for p in prompts) / prefill_s,
        "decode_tok_s": len(prompts) * (decode_tokens - 1) / decode_s,
        "peak_rss_mb": peak_rss_mb(),
        "samples": rounds,
    }


def exact_match(model: str, n: int, threads: int) -> float:
    from edgeweave.generation.backends import load_backend
    from edgeweave.generation.evaluate import held_out_exact_match

    # llama.cpp for speed: the parity tests show its greedy output equals torch's token for token
    return held_out_exact_match(load_backend("llamacpp", model, threads=threads), n).exact_match


def run_worker(kind: str, model: str, rounds: int, decode_tokens: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.backends", "--worker", kind, model]
    cmd += ["--rounds", str(rounds), "--decode-tokens", str(decode_tokens), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker {kind}/{model} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    metrics = (("decode_tok_s", "decode tokens/s"), ("ttft_ms", "TTFT (ms)"), ("peak_rss_mb", "peak RSS (MiB)"))
    width = 0.8 / len(KINDS)
    for ax, (key, label) in zip(axes, metrics, strict=True):
        for i, kind in enumerate(KINDS):
            vals = [next(r[key] for r in rows if r["backend"] == kind and r["model"] == m) for m in MODELS]
            offset = (i - (len(KINDS) - 1) / 2) * width
            ax.bar([x + offset for x in range(len(MODELS))], vals, width, label=kind)
        ax.set_xticks(range(len(MODELS)), [m.removeprefix("weave-home-") for m in MODELS])
        ax.set_title(label)
    axes[0].legend()
    fig.suptitle("edgeweave device backends (median over prompts x rounds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "fewer rounds and held-out commands")
    ap.add_argument("--worker", nargs=2, metavar=("BACKEND", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    if args.worker:
        print(json.dumps(worker(*args.worker, rounds, args.decode_tokens, args.threads)))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=130)
    from edgeweave.export.cache import runtime_file
    from edgeweave.models.registry import resolve_checkpoint

    with console.status("exporting GGUF and .pte (once; cached)"):
        # exporting here, not in the workers, keeps the exporters out of their peak memory
        for model in MODELS:
            for target in ("gguf", "pte"):
                runtime_file(resolve_checkpoint(model), target)
    rows = []
    for model in MODELS:
        for kind in KINDS:
            with console.status(f"{model} on {kind}"):
                rows.append(run_worker(kind, model, rounds, args.decode_tokens, args.threads))
    n_eval = 300 if args.quick else 1000
    with console.status(f"exact match on {n_eval} held-out commands"):
        accuracy = {m: exact_match(m, n_eval, args.threads) for m in MODELS}

    table = Table(title=f"device backends, {args.threads} threads, {args.decode_tokens} decoded tokens")
    columns = ("model", "backend", "TTFT ms", "prefill tok/s", "decode tok/s", "peak RSS MiB")
    for col in (*columns, "decode vs torch", "decode vs llama.cpp"):
        table.add_column(col, justify="right")
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["backend"] == "torch")
        llama = next(b for b in rows if b["model"] == r["model"] and b["backend"] == "llamacpp")
        r["decode_vs_torch"] = r["decode_tok_s"] / base["decode_tok_s"]
        r["decode_vs_llamacpp"] = r["decode_tok_s"] / llama["decode_tok_s"]
        r["ttft_vs_torch"] = r["ttft_ms"] / base["ttft_ms"]
        table.add_row(
            r["model"],
            r["backend"],
            f"{r['ttft_ms']:.2f}",
            f"{r['prefill_tok_s']:.0f}",
            f"{r['decode_tok_s']:.0f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['decode_vs_torch']:.2f}x",
            f"{r['decode_vs_llamacpp']:.2f}x",
        )
    console.print(table)
    console.print(", ".join(f"{m}: exact match {a:.3f} (n={n_eval})" for m, a in accuracy.items()))
    for model in MODELS:
        ratio = next(r for r in rows if r["model"] == model and r["backend"] == "executorch")["decode_vs_llamacpp"]
        console.print(f"{model}: ExecuTorch decodes at {ratio:.2f}x llama.cpp's tokens/s")

    def pick(model: str, kind: str, key: str) -> float:
        return next(r[key] for r in rows if r["model"] == model and r["backend"] == kind)

    dev = MODELS[0]
    summary = {
        "llamacpp_decode_tok_s": pick(dev, "llamacpp", "decode_tok_s"),
        "executorch_decode_tok_s": pick(dev, "executorch", "decode_tok_s"),
        "torch_decode_tok_s": pick(dev, "torch", "decode_tok_s"),
        "llamacpp_vs_torch_decode": pick(dev, "llamacpp", "decode_vs_torch"),
        "executorch_vs_torch_decode": pick(dev, "executorch", "decode_vs_torch"),
        "executorch_vs_llamacpp_decode": pick(dev, "executorch", "decode_vs_llamacpp"),
        "torch_batched_decode_tok_s": pick(dev, "torch-batched", "decode_tok_s"),
        "torch_batched_vs_torch_decode": pick(dev, "torch-batched", "decode_vs_torch"),
        "device_model_exact_match": accuracy[MODELS[0]],
        "cloud_model_exact_match": accuracy[MODELS[1]],
    }
    save_result("backends", args.quick, summary, threads=args.threads, rows=rows, exact_match_n=n_eval)
    plot(rows, RESULTS / "backends.png")
    console.print(f"wrote {RESULTS / 'backends.json'} and backends.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
