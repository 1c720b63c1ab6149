"""Multi-LoRA kernel benchmark (tLoRA, arXiv 2602.07263; Punica / S-LoRA for the padded baseline):
the segmented torch path against looping over adapters, and on a GPU the fused Triton kernels.

Mixed batches of 4-16 adapters with ranks drawn from 4..64, one adapted linear layer each:

- **train**: tLoRA's super-model batch: every job's samples side by side (2 samples of 64 tokens
  per job, contiguous per job, as ``Segments.of_rows(job_per_sample).repeat_rows(T)`` gives);
- **decode**: the cloud engine's mixed-adapter decode step: one row per request, the requests'
  adapters in arrival order (so an adapter's rows are scattered over the batch);

at the weave-home-device model's MLP shape (dim 128 -> ffn 512) and at dim 1024 -> 1024.
Methods: ``loop`` (one pass per adapter over a boolean row mask: the baseline), ``segmented``
(the engine's torch path), ``padded`` (every adapter zero-padded to the largest rank and every
adapter's rows to the most rows, two ``bmm``: the Punica/S-LoRA-style padded batch) and, with
CUDA only, ``triton`` (Triton's interpreter on CPU measures the interpreter, not the kernel).
Forward alone (serving) and forward + backward to ``x`` and every A/B (training); times are
medians over rounds that time every method in turn (see :func:`interleaved_medians`), on CPU with
``--threads`` intra-op threads (default 1: on a shared 2-core machine a second thread mostly
waits for a descheduled peer and turns the medians into noise).  Ratios are speed-ups:
``segmented_vs_loop_fwd`` = loop time / segmented time, the median over the workloads (``_min``: the worst workload).

    python -m benchmarks.lora_kernel [--quick]
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmarks.results_io import RESULTS, parser, save_result
from kernels.multi_lora import NO_ADAPTER, LoraWeights, Segments, lora_delta

RANKS = (4, 8, 16, 32, 64)
CPU_METHODS = ("loop", "segmented", "padded")
GPU_METHODS = (*CPU_METHODS, "triton")


@dataclass(frozen=True)
class Workload:
    name: str
    fan_in: int
    fan_out: int
    adapters: int
    layout: str  # "train" (per-job contiguous samples) or "decode" (one row per request)

    def segments(self, rng: random.Random) -> Segments:
        if self.layout == "train":
            return Segments.of_rows([j for j in range(self.adapters) for _ in range(2)]).repeat_rows(64)
        return Segments.of_rows([rng.randrange(self.adapters) for _ in range(8 * self.adapters)])


WORKLOADS = (
    Workload("device-train-8", 128, 512, 8, "train"),
    Workload("device-train-16", 128, 512, 16, "train"),
    Workload("device-decode-16", 128, 512, 16, "decode"),
    Workload("large-train-4", 1024, 1024, 4, "train"),
    Workload("large-train-8", 1024, 1024, 8, "train"),
    Workload("large-decode-8", 1024, 1024, 8, "decode"),
)
QUICK = (WORKLOADS[0], WORKLOADS[2], WORKLOADS[4], WORKLOADS[5])


def padded_delta(x: torch.Tensor, segments: Segments, adapters: list[LoraWeights]) -> torch.Tensor:
    """The padded baseline: A/B zero-padded to the largest rank, each adapter's rows gathered into
    a [rows_max, in] slot of one [n, rows_max, in] batch, two bmm, the rows scattered back."""
    r_max = max(w.a.shape[0] for w in adapters)
    a = torch.stack([F.pad(w.a * w.scaling, (0, 0, 0, r_max - w.a.shape[0])) for w in adapters])  # [n, r_max, in]
    b = torch.stack([F.pad(w.b, (0, r_max - w.b.shape[1])) for w in adapters])  # [n, out, r_max]
    rows: list[list[int]] = [[] for _ in adapters]
    for s, idx in enumerate(segments.adapters):
        if idx != NO_ADAPTER:
            rows[idx].extend(range(segments.bounds[s], segments.bounds[s + 1]))
    n_max = max(map(len, rows))
    slot = torch.tensor([i * n_max + j for i, r in enumerate(rows) for j in range(len(r))], device=x.device)
    src = torch.tensor([t for r in rows for t in r], device=x.device)
    xp = x.new_zeros(len(adapters) * n_max, x.shape[1]).index_copy(0, slot, x.index_select(0, src))
    yp = torch.bmm(torch.bmm(xp.view(len(adapters), n_max, -1), a.transpose(1, 2)), b.transpose(1, 2))
    return x.new_zeros(x.shape[0], b.shape[1]).index_copy(0, src, yp.reshape(-1, b.shape[1]).index_select(0, slot))


def make_batch(
    w: Workload, device: str, dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, Segments, list[LoraWeights]]:
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    ranks = [rng.choice(RANKS) for _ in range(w.adapters)]
    ranks[0] = RANKS[-1]  # every batch has the largest rank beside small ones (what padding pays for)
    ws = [
        LoraWeights(
            (torch.randn(r, w.fan_in, generator=gen) / w.fan_in**0.5).to(device, dtype).requires_grad_(),
            (torch.randn(w.fan_out, r, generator=gen) / r**0.5).to(device, dtype).requires_grad_(),
            16.0 / r,
        )
        for r in ranks
    ]
    seg = w.segments(rng)
    x = torch.randn(seg.rows, w.fan_in, generator=gen).to(device, dtype).requires_grad_()
    return x, seg, ws


def delta_fn(method: str, x: torch.Tensor, seg: Segments, ws: list[LoraWeights]) -> Callable[[], torch.Tensor]:
    if method == "padded":
        return lambda: padded_delta(x, seg, ws)
    return lambda: lora_delta(x, seg, ws, method)  # type: ignore[arg-type]


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int, block_s: float) -> dict[str, float]:
    """Seconds per call, the median over ``rounds`` rounds; each round times a block of calls of
    every method in turn, so that a busy spell of a shared machine hits all methods alike."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def block(f: Callable[[], object], n: int) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        sync()
        return (time.perf_counter() - t0) / n

    calls = {}
    for m, f in fns.items():
        f()  # warm-up (and, on a GPU, the kernels' compilation)
        calls[m] = max(1, round(block_s / max(block(f, 1), 1e-6)))
    samples: dict[str, list[float]] = {m: [] for m in fns}
    for _ in range(rounds):
        for m, f in fns.items():
            samples[m].append(block(f, calls[m]))
    return {m: statistics.median(v) for m, v in samples.items()}


def time_workload(
    w: Workload, methods: tuple[str, ...], device: str, dtype: torch.dtype, rounds: int
) -> dict[str, dict[str, float]]:
    x, seg, ws = make_batch(w, device, dtype, seed=len(w.name))
    leaves = [x] + [t for lw in ws for t in (lw.a, lw.b)]
    gy = torch.randn(x.shape[0], w.fan_out, device=device, dtype=dtype)
    fns = {m: delta_fn(m, x, seg, ws) for m in methods}
    with torch.no_grad():
        fwd = interleaved_medians(fns, rounds, block_s=0.02)
    fwd_bwd = interleaved_medians(
        {m: lambda f=f: torch.autograd.grad(f(), leaves, gy) for m, f in fns.items()}, rounds, block_s=0.02
    )
    return {"fwd_s": fwd, "fwd_bwd_s": fwd_bwd}


def plot(results: dict[str, dict[str, dict[str, float]]], device: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    names = list(results)
    methods = list(next(iter(results.values()))["fwd_s"])
    width = 0.8 / len(methods)
    for ax, key, title in ((axes[0], "fwd_s", "forward"), (axes[1], "fwd_bwd_s", "forward + backward")):
        for i, m in enumerate(methods):
            ax.bar(
                [j + i * width for j in range(len(names))], [1e3 * results[n][key][m] for n in names], width, label=m
            )
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, rotation=20, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ms (median)")
        ax.set_title(f"multi-LoRA {title}, {device}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def speedups(results: dict[str, dict[str, dict[str, float]]], ours: str, base: str, key: str) -> list[float]:
    return [r[key][base] / r[key][ours] for r in results.values()]


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "four of the six workloads, fewer timing rounds")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU (default 1)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    methods = GPU_METHODS if cuda else CPU_METHODS
    device_name = torch.cuda.get_device_name(0) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    results = {}
    for w in QUICK if args.quick else WORKLOADS:
        results[w.name] = r = time_workload(w, methods, device, dtype, rounds=7 if args.quick else 21)
        line = ", ".join(f"{m} {1e3 * r['fwd_s'][m]:.3f}/{1e3 * r['fwd_bwd_s'][m]:.3f}" for m in methods)
        print(f"{w.name:>18}: ms fwd/fwd+bwd: {line}")
    summary: dict[str, object] = {"device": device_name, "dtype": str(dtype)}
    pairs = [("segmented", "loop"), ("segmented", "padded")]
    if cuda:
        pairs += [("triton", "segmented"), ("triton", "loop"), ("triton", "padded")]
    else:
        summary.update(
            {
                k: None
                for k in (
                    "triton_vs_segmented_fwd",
                    "triton_vs_segmented_fwd_bwd",
                    "triton_vs_loop_fwd",
                    "triton_vs_padded_fwd",
                )
            }
        )
        summary["note"] = "no CUDA device: Triton timings skipped (the interpreter times numpy, not the kernel)"
    for ours, base in pairs:
        for key, tag in (("fwd_s", "fwd"), ("fwd_bwd_s", "fwd_bwd")):
            sp = speedups(results, ours, base, key)
            summary[f"{ours}_vs_{base}_{tag}"] = statistics.median(sp)
            summary[f"{ours}_vs_{base}_{tag}_min"] = min(sp)
    workloads = {
        w.name: {"fan_in": w.fan_in, "fan_out": w.fan_out, "adapters": w.adapters, "layout": w.layout}
        for w in WORKLOADS
    }
    save_result("lora_kernel", args.quick, summary, workloads=workloads, timings=results)
    plot(results, device_name, str(RESULTS / "lora_kernel.png"))
    for k, v in summary.items():
        print(f"{k:>34}: {v:.3f}" if isinstance(v, float) else f"{k:>34}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
