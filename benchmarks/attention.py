"""PackInfer attention benchmark: packed vs unpacked varlen vs padded SDPA vs
per-request SDPA on batches drawn from the Azure LLM conversation trace 2023
(CC-BY 4.0, Patel et al., Splitwise, ISCA 2024).

- **Decode** (TBT): a batch of running requests, each with the trace's context
  length plus a uniform share of its generated tokens, advanced ``steps``
  decode steps over a paged cache (blocks scattered at random).  The packed
  path pays for its plan: table updates every step and a full replan (CPU
  planning + upload) whenever the drift monitor fires; the first plan is
  counted too.
- **Prefill** (throughput): a batch of whole prompts from the trace; the packed
  path's CPU planning time is reported beside its kernel time.
- **Wasted pairs**: computed query-key score pairs that causal attention does
  not need, from the exact tile walk of each kernel (padded: the padded
  rectangle), summed over the prefill batches (the headline keys) and, apart,
  over the decode batches (where a tile's other rows dominate: one query token
  per request fills ``REP`` of a program's at least 16 rows, packed or not).

On a GPU: a Llama-3-8B attention shape (32 query heads, 8 KV heads, head dim
128, fp16).  Without one, Triton's interpreter runs the kernels on a tiny
shape and short contexts: those timings measure the interpreter, not the
algorithm, and the GPU run is the one to quote.

    python -m benchmarks.attention [--quick] [--trace PATH]
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel is defined

from benchmarks.results_io import RESULTS, parser, save_result  # noqa: E402
from edgeweave.data.traces import CREDIT, load_trace  # noqa: E402
from kernels.batch import AttnBatch, slots_of  # noqa: E402
from kernels.packed_tables import PackedTables, build_tables  # noqa: E402
from kernels.packing import DriftMonitor, PackingPlan, SeqWork, capacity_for, plan_groups  # noqa: E402
from kernels.reference import sdpa_padded  # noqa: E402
from kernels.triton_attention import VarlenTables, block_m_for, packed_attention, varlen_attention  # noqa: E402

METHODS = ("packed", "varlen", "sdpa_padded", "sdpa_per_request")


@dataclass(frozen=True)
class Setup:
    device: str
    dtype: torch.dtype
    heads: tuple[int, int, int]  # (Hq, Hkv, D)
    decode_batch: int
    prefill_batch: int
    max_context: int
    steps: int
    batches: int
    repeats: int
    target_programs: int
    decode_slots: int
    prefill_block_m: int
    block_n: int
    block_size: int = 16

    @property
    def rep(self) -> int:
        return self.heads[0] // self.heads[1]


def gpu_setup(quick: bool, sms: int) -> Setup:
    return Setup(
        "cuda", torch.float16, (32, 8, 128), decode_batch=64, prefill_batch=16, max_context=16384,
        steps=16 if quick else 64, batches=3 if quick else 8, repeats=3 if quick else 5,
        target_programs=2 * sms, decode_slots=4, prefill_block_m=64, block_n=64,
    )  # fmt: skip


def setup_for(quick: bool) -> Setup:
    if torch.cuda.is_available():
        return gpu_setup(quick, torch.cuda.get_device_properties(0).multi_processor_count)
    return Setup(
        "cpu", torch.float32, (4, 2, 32), decode_batch=8, prefill_batch=4, max_context=384,
        steps=2, batches=2 if quick else 3, repeats=1, target_programs=8, decode_slots=8,
        prefill_block_m=32, block_n=32,
    )  # fmt: skip


class Cache:
    """One paged K/V cache holding a batch's keys (plus decode headroom), blocks shuffled."""

    def __init__(self, s: Setup, kv_lens: list[int], headroom: int, gen: torch.Generator) -> None:
        _, hkv, d = s.heads
        need = [math.ceil((kv + headroom) / s.block_size) for kv in kv_lens]
        perm = torch.randperm(sum(need), generator=gen).tolist()
        self.tables, at = [], 0
        for n in need:
            self.tables.append(perm[at : at + n])
            at += n
        slots = sum(need) * s.block_size
        self.k = torch.randn(slots, hkv, d, generator=gen).to(s.device, s.dtype)
        self.v = torch.randn(slots, hkv, d, generator=gen).to(s.device, s.dtype)

    def contiguous(self, s: Setup, b: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = slots_of(self.tables[b], n, s.block_size).to(s.device)
        return self.k[idx].transpose(0, 1).unsqueeze(0), self.v[idx].transpose(0, 1).unsqueeze(0)


class Timer:
    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"

    def __call__(self, fn: Callable[[], object], repeats: int) -> float:
        """Median seconds of ``fn`` over ``repeats`` runs after one warm-up."""
        fn()
        times = []
        for _ in range(repeats):
            if self.cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if self.cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


def plan_for(s: Setup, works: list[SeqWork], slots: int) -> PackingPlan:
    """The packing plan as the engine makes it: keys spread over the GPU's programs per KV head."""
    return plan_groups(works, capacity_for(works, s.target_programs // s.heads[1], slots), slots, s.block_n)


# --- wasted work: the exact tile walk of each kernel ----------------------------------
def computed_pairs_packed(plan: PackingPlan, rep: int, block_n: int) -> int:
    rows = block_m_for(plan.slots, rep) // rep  # query tokens a program's tile holds
    return sum(rows * sum(math.ceil(seg.keys / block_n) * block_n for seg in g.segments) for g in plan.groups)


def computed_pairs_varlen(batch: AttnBatch, slots: int, block_n: int) -> int:
    total = 0
    for q, kv in zip(batch.q_lens, batch.kv_lens, strict=True):
        for lo in range(0, q, slots):
            k_end = kv - q + min(q, lo + slots)
            total += slots * math.ceil(k_end / block_n) * block_n
    return total


def computed_pairs_padded(batch: AttnBatch) -> int:
    return batch.num_seqs * max(batch.q_lens) * max(batch.kv_lens)


def computed_pairs_per_request(batch: AttnBatch) -> int:
    return sum(q * kv for q, kv in zip(batch.q_lens, batch.kv_lens, strict=True))


def wasted_pairs(s: Setup, trace: list, rng: random.Random) -> dict[str, float]:
    """Fraction of computed score pairs causal attention does not need, per phase and method,
    over ``s.batches`` decode and prefill batches drawn like the timed ones."""
    valid = {"prefill": 0, "decode": 0}
    computed = {phase: {"padded": 0, "per_request": 0, "varlen": 0, "packed": 0} for phase in valid}
    for _ in range(s.batches):
        kv = draw_decode(s, trace, rng)
        lens = draw_prefill(s, trace, rng)
        for phase, q, k, slots, varlen_slots in (
            ("decode", [1] * len(kv), kv, s.decode_slots, block_m_for(1, s.rep) // s.rep),
            ("prefill", lens, lens, s.prefill_block_m // s.rep, s.prefill_block_m // s.rep),
        ):
            batch = AttnBatch(q, k, [[0] * math.ceil(x / s.block_size) for x in k], s.block_size)
            works = batch.works()
            plan = plan_for(s, works, slots)
            valid[phase] += batch.valid_pairs()
            c = computed[phase]
            c["padded"] += computed_pairs_padded(batch)
            c["per_request"] += computed_pairs_per_request(batch)
            c["varlen"] += computed_pairs_varlen(batch, varlen_slots, s.block_n)
            c["packed"] += computed_pairs_packed(plan, s.rep, s.block_n)
    return {f"{ph}_{k}": 1 - valid[ph] / c for ph, cs in computed.items() for k, c in cs.items()}


# --- workloads -------------------------------------------------------------------------
def draw_decode(s: Setup, trace: list, rng: random.Random) -> list[int]:
    scale = s.max_context / 16384
    return [
        max(1, min(s.max_context - s.steps, round((r.prompt_tokens + rng.randint(0, r.output_tokens)) * scale)))
        for r in rng.sample(trace, s.decode_batch)
    ]


def draw_prefill(s: Setup, trace: list, rng: random.Random) -> list[int]:
    scale = s.max_context / 16384
    return [max(1, min(s.max_context, round(r.prompt_tokens * scale))) for r in rng.sample(trace, s.prefill_batch)]


def per_request_sdpa(s: Setup, q: torch.Tensor, cache: Cache, batch: AttnBatch) -> torch.Tensor:
    """SDPA one request at a time over its keys gathered from the paged cache."""
    out = torch.empty_like(q)
    for b in range(batch.num_seqs):
        lo, hi = batch.cu_q[b], batch.cu_q[b + 1]
        k, v = cache.contiguous(s, b, batch.kv_lens[b])
        qb = q[lo:hi].transpose(0, 1).unsqueeze(0)
        causal = hi - lo == batch.kv_lens[b]  # a whole prompt; a decode row sees every key
        o = F.scaled_dot_product_attention(qb, k, v, is_causal=causal and hi - lo > 1, enable_gqa=True)
        out[lo:hi] = o[0].transpose(0, 1)
    return out


def decode_round(s: Setup, kv_lens: list[int], gen: torch.Generator, timer: Timer) -> dict[str, float]:
    hq, _, d = s.heads
    cache = Cache(s, kv_lens, s.steps + 1, gen)
    q = torch.randn(len(kv_lens), hq, d, generator=gen).to(s.device, s.dtype)
    slots = s.decode_slots

    def batch_at(step: int) -> AttnBatch:
        return AttnBatch([1] * len(kv_lens), [kv + step for kv in kv_lens], cache.tables, s.block_size)

    def packed_steps() -> None:
        step, state = 0, None
        while step < s.steps:
            if state is None:
                batch = batch_at(step)
                works = batch.works()
                plan = plan_for(s, works, slots)
                state = (build_tables(plan, batch, s.device), DriftMonitor(plan, works))
            tables, monitor = state
            packed_attention(q, cache.k, cache.v, tables, s.block_size, block_n=s.block_n)
            tables.advance()
            step += 1
            if monitor.step():
                state = None

    def varlen_steps() -> None:
        tables = VarlenTables(batch_at(0), s.device)
        for _ in range(s.steps):
            varlen_attention(q, cache.k, cache.v, tables, s.block_size, block_m=16, block_n=s.block_n)
            tables.advance()

    def padded_steps() -> None:
        for step in range(s.steps):
            sdpa_padded(q, cache.k, cache.v, batch_at(step))

    def per_request_steps() -> None:
        for step in range(s.steps):
            per_request_sdpa(s, q, cache, batch_at(step))

    runs = {"packed": packed_steps, "varlen": varlen_steps, "sdpa_padded": padded_steps}
    runs["sdpa_per_request"] = per_request_steps
    return {m: timer(fn, s.repeats) / s.steps for m, fn in runs.items()}


def prefill_round(s: Setup, lens: list[int], gen: torch.Generator, timer: Timer) -> tuple[dict[str, float], float]:
    hq, _, d = s.heads
    cache = Cache(s, lens, 0, gen)
    batch = AttnBatch(lens, lens, cache.tables, s.block_size)
    q = torch.randn(sum(lens), hq, d, generator=gen).to(s.device, s.dtype)
    slots = s.prefill_block_m // s.rep
    works = batch.works()
    t0 = time.perf_counter()
    plan = plan_for(s, works, slots)
    tables: PackedTables = build_tables(plan, batch, s.device)
    plan_s = time.perf_counter() - t0
    vt = VarlenTables(batch, s.device)
    runs = {
        "packed": lambda: packed_attention(q, cache.k, cache.v, tables, s.block_size, block_n=s.block_n),
        "varlen": lambda: varlen_attention(
            q, cache.k, cache.v, vt, s.block_size, block_m=s.prefill_block_m, block_n=s.block_n
        ),
        "sdpa_padded": lambda: sdpa_padded(q, cache.k, cache.v, batch),
        "sdpa_per_request": lambda: per_request_sdpa(s, q, cache, batch),
    }
    return {m: timer(fn, s.repeats) for m, fn in runs.items()}, plan_s


def plot(rows: dict[str, dict[str, float]], waste: dict[str, float], device: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    names = list(METHODS)
    axes[0].bar(names, [1000 * rows["tbt_s"][m] for m in names], color="tab:blue")
    axes[0].set_title(f"decode step (TBT), ms, {device}")
    axes[1].bar(names, [rows["prefill_tok_s"][m] / 1000 for m in names], color="tab:green")
    axes[1].set_title("prefill throughput, k tokens/s")
    prefill = {k.removeprefix("prefill_"): w for k, w in waste.items() if k.startswith("prefill_")}
    axes[2].bar(list(prefill), [100 * w for w in prefill.values()], color="tab:red")
    axes[2].set_title("prefill: computed query-key pairs wasted, %")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=25)
    fig.suptitle("PackInfer attention on Azure conversation trace batches (" + CREDIT + ")", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "fewer and smaller batches", trace=True)
    args = ap.parse_args(argv)
    from rich.console import Console

    console = Console()
    s = setup_for(args.quick)
    trace = load_trace(args.trace)
    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    timer = Timer(s.device)
    device_name = torch.cuda.get_device_name(0) if s.device == "cuda" else "cpu (Triton interpreter)"
    tbt: dict[str, list[float]] = {m: [] for m in METHODS}
    tput: dict[str, list[float]] = {m: [] for m in METHODS}
    tbt_ratio, tput_ratio, plan_share = [], [], []
    for i in range(s.batches):
        with console.status(f"batch {i + 1}/{s.batches}: decode"):
            kv = draw_decode(s, trace, rng)
            d = decode_round(s, kv, gen, timer)
        with console.status(f"batch {i + 1}/{s.batches}: prefill"):
            lens = draw_prefill(s, trace, rng)
            p, plan_s = prefill_round(s, lens, gen, timer)
        for m in METHODS:
            tbt[m].append(d[m])
            tput[m].append(sum(lens) / p[m])
        tbt_ratio.append(d["packed"] / d["varlen"])
        tput_ratio.append(p["varlen"] / p["packed"])
        plan_share.append(plan_s / p["packed"])
        console.print(
            f"batch {i + 1}: decode TBT packed/varlen {tbt_ratio[-1]:.3f}, "
            f"prefill throughput packed/varlen {tput_ratio[-1]:.3f}"
        )
    waste = wasted_pairs(s, trace, random.Random(1))
    # the same accounting for the GPU shape and context lengths (pure arithmetic over the plans)
    gpu_waste = waste if s.device == "cuda" else wasted_pairs(gpu_setup(args.quick, 132), trace, random.Random(1))
    rows = {
        "tbt_s": {m: statistics.median(v) for m, v in tbt.items()},
        "prefill_tok_s": {m: statistics.median(v) for m, v in tput.items()},
    }
    summary = {
        "device": device_name,
        "packed_vs_varlen_tbt_ratio": statistics.median(tbt_ratio),
        "packed_vs_varlen_prefill_throughput_ratio": statistics.median(tput_ratio),
        "wasted_pairs_padded": waste["prefill_padded"],
        "wasted_pairs_packed": waste["prefill_packed"],
        "wasted_pairs_varlen": waste["prefill_varlen"],
        **{f"wasted_pairs_{k}": v for k, v in waste.items() if k.startswith("decode")},
        **{f"gpu_shape_wasted_pairs_{k}": v for k, v in gpu_waste.items()},
        "packed_vs_padded_tbt_ratio": rows["tbt_s"]["packed"] / rows["tbt_s"]["sdpa_padded"],
        "packed_vs_per_request_tbt_ratio": rows["tbt_s"]["packed"] / rows["tbt_s"]["sdpa_per_request"],
        "packed_prefill_planning_vs_kernel": statistics.median(plan_share),
        **{f"tbt_ms_{m}": 1000 * v for m, v in rows["tbt_s"].items()},
        **{f"prefill_tok_s_{m}": v for m, v in rows["prefill_tok_s"].items()},
    }
    shape = {"heads_q": s.heads[0], "heads_kv": s.heads[1], "head_dim": s.heads[2], "dtype": str(s.dtype)}
    save_result(
        "attention",
        args.quick,
        summary,
        trace=CREDIT,
        setup={**shape, "decode_batch": s.decode_batch, "prefill_batch": s.prefill_batch, "steps": s.steps},
        per_batch={"tbt_ratio": tbt_ratio, "prefill_throughput_ratio": tput_ratio},
    )
    plot(rows, waste, device_name, str(RESULTS / "attention.png"))
    for k, v in summary.items():
        console.print(f"{k:>44}: {v:.4g}" if isinstance(v, float) else f"{k:>44}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
