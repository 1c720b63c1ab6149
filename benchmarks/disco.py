"""DiSCo benchmark: device/cloud dispatch and migration of chat answers, against the baselines.

Trace-driven part (the live policy object, :mod:`coordinator.disco.simulator`):

- **Requests**: the Azure LLM conversation trace 2023 (CC-BY 4.0, Patel et
  al., Splitwise, ISCA 2024), prompt and output lengths as they are (requests
  over the phone model's 8,192-token context are left out).
- **Device** (a phone running a ~0.5B model, ``PHONE_PARAMETERS``): llama.cpp
  and ExecuTorch are timed on this machine on both tiny models (TTFT at five
  prompt lengths, decode speed); a token's time is fitted as a fixed overhead
  plus its FLOPs over the measured FLOP rate (:class:`ComputeProfile`) and
  extrapolated to the phone model; hardware factor 1 (one of this machine's
  x86 cores, one compute thread, stands in for a phone's big core; the
  fastest of a few runs at each length, a slower one being another process
  on the shared cores; times are the CPU seconds the process spent, which
  other processes on the shared machine cannot inflate).  Energy: the phone power model's
  busy watts (``max_w - idle_w``) times the time per prefilled / decoded
  token.  A what-if scenario (``llamacpp-npu``) has the same phone prefill
  ``NPU_PREFILL_SPEEDUP`` (10) times faster at the same power, as phone NPUs
  and GPUs do: stated, not measured.
- **Cloud**: TTFTs of the real cloud engine (weave-home-cloud, continuous
  batching) replaying trace arrivals at 0.9 of its measured capacity, plus a
  network round trip drawn per request from a log-normal (median 60 ms,
  sigma 0.5: p99 about 190 ms, LTE/5G-class); time between tokens: the
  engine's measured median.
- **Prices**: the coordinator's defaults (``DiscoConfig``): cloud $0.15 / $0.60
  per million prompt / output tokens, device $1e-6 per joule (battery wear).

Policies, one run, budgets 10-90% of prompt tokens on the constrained tier:
DiSCo cloud-constrained and device-constrained, each with and without
migration; device-only, cloud-only, a random split at the same budget, and
always-race.  "Equal budget" baselines for a cloud-constrained budget b are
device-only and the random split at b (device-constrained: cloud-only and the
split); TTFT reductions are against the best of them.

Live part: a phone daemon (llama.cpp, weave-home-cloud), the cloud engine and
the coordinator as separate processes; trace requests (lengths scaled into the
512-token context) through the coordinator with DiSCo (defaults), pinned to
the device, pinned to the cloud; TTFT measured by the client, cost from each
answer's ``usage.cost_usd``.

    python -m benchmarks.disco [--quick] [--trace PATH]
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from benchmarks.engine import capacity_tok_s, latencies, replay, workload
from benchmarks.results_io import RESULTS, parser, save_result
from cloud.tempo.workload import fit_to_context
from coordinator.disco.baselines import AlwaysRace, Only, RandomSplit
from coordinator.disco.cost import ComputeProfile, DeviceEnergy
from coordinator.disco.dispatch_policy import DeviceTTFT
from coordinator.disco.policy import DiscoPolicy
from coordinator.disco.simulator import Planner, Profiles, SimAnswer, simulate
from edgeweave.cluster.cluster_files import LocalDevice, cloud_toml, write
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.cluster.processes import spawn
from edgeweave.config import DEFAULT_POWER, DiscoConfig
from edgeweave.data.traces import CREDIT, load_trace
from edgeweave.wire.sse import read_events

MODELS = ("weave-home-device", "weave-home-cloud")
BACKENDS = ("llamacpp", "executorch")
PHONE_PARAMETERS = 494_000_000  # Qwen2.5-0.5B class
PHONE_CONTEXT = 8192
# one compute thread: two llama.cpp threads on this shared 2-core machine spin against the other
# processes (10x slower under load); one thread times the runtime itself, as a phone's own core runs it
PHONE_THREADS = 1
RTT_MEDIAN_S, RTT_SIGMA = 0.060, 0.5
BUDGETS = (0.1, 0.3, 0.5, 0.7, 0.9)
HEAD_BUDGET = 0.5
NPU_PREFILL_SPEEDUP = 10.0
CLOUD_KEY = "disco-bench-cloud-key-0123"
LIVE_MODEL = "weave-home-cloud"


def count_parameters(model: str) -> int:
    from safetensors import safe_open

    from edgeweave.models.registry import resolve_checkpoint

    with safe_open(str(resolve_checkpoint(model) / "model.safetensors"), "np") as f:
        return sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118


def time_backend(kind: str, model: str, rounds: int) -> tuple[DeviceTTFT, float]:
    """(TTFT line over prompt length, seconds per decoded token) of one backend on this machine, on one
    compute thread, in the CPU seconds the process spent (``time.process_time``): on a dedicated core
    that is the wall time, and another process on this shared machine's cores cannot inflate it.  The
    least of ``rounds`` runs per prompt length; a fresh random prompt each run (no prompt cache hit)."""
    from edgeweave.generation.backends import load_backend
    from edgeweave.generation.sampling import SamplingParams

    backend = load_backend(kind, model, threads=PHONE_THREADS)
    rng = random.Random(0)
    decoded = 24

    def cpu_s(n: int, max_tokens: int) -> float:
        prompt = [rng.randrange(8, 264) for _ in range(n)]
        start = time.process_time()
        backend.generate(prompt, SamplingParams(max_tokens=max_tokens, ignore_eos=True))
        return time.process_time() - start

    cpu_s(32, decoded)  # warm-up
    samples: list[tuple[int, float]] = []
    decode: list[float] = []
    for n in (32, 96, 160, 256, 384):
        first = min(cpu_s(n, 1) for _ in range(rounds))  # prefill and the first token
        full = min(cpu_s(n, 1 + decoded) for _ in range(rounds))
        samples.append((n, first))
        decode.append(max(full - first, 1e-9) / decoded)
    backend.close()
    return DeviceTTFT.fit(samples), statistics.median(decode)


@dataclass(frozen=True)
class PhoneProfile:
    backend: str
    ttft: DeviceTTFT
    tbt_s: float
    energy: DeviceEnergy
    measured: dict[str, Any]


def phone_profile(kind: str, rounds: int) -> PhoneProfile:
    """The backend timed on both tiny models, extrapolated to the phone model by FLOPs."""
    per_model = {m: time_backend(kind, m, rounds) for m in MODELS}
    params = {m: count_parameters(m) for m in MODELS}
    prefill = ComputeProfile.fit([(params[m], per_model[m][0].per_token_s) for m in MODELS])
    decode = ComputeProfile.fit([(params[m], per_model[m][1]) for m in MODELS])
    intercept = statistics.mean(per_model[m][0].intercept_s for m in MODELS)
    power = DEFAULT_POWER["phone"]
    per_token_s = prefill.seconds(PHONE_PARAMETERS)
    tbt_s = decode.seconds(PHONE_PARAMETERS)
    energy = DeviceEnergy.measured(power.max_w - power.idle_w, 1 / tbt_s, 1 / per_token_s)
    measured = {
        m: {
            "parameters": params[m],
            "ttft_intercept_ms": 1000 * per_model[m][0].intercept_s,
            "prefill_ms_per_token": 1000 * per_model[m][0].per_token_s,
            "decode_ms_per_token": 1000 * per_model[m][1],
        }
        for m in MODELS
    }
    return PhoneProfile(kind, DeviceTTFT(intercept, per_token_s), tbt_s, energy, measured)


def cloud_profile(trace: str, n: int) -> tuple[list[float], float, dict[str, float]]:
    """(TTFTs at 0.9 load plus network round trips, median time between tokens, engine latencies)."""
    reqs = workload(trace, n, seed=1)
    cap = capacity_tok_s(reqs)
    rate = 0.9 * cap / statistics.mean(r.output_tokens for r in reqs)
    scale = (len(reqs) / rate) / (reqs[-1].arrival_s or 1.0)
    for r in reqs:
        r.arrival_s *= scale
    replay(reqs, static=False)
    rng = random.Random(2)
    ttft = [r.token_times[0] - r.arrival_s + rng.lognormvariate(np.log(RTT_MEDIAN_S), RTT_SIGMA) for r in reqs]
    lat = latencies(reqs)
    return ttft, lat["tbt_p50_s"], {**lat, "capacity_tok_s": cap}


@dataclass(frozen=True)
class Outcome:
    mean_ttft_s: float
    p99_ttft_s: float
    p99_tbt_s: float
    cost_usd: float
    cloud_share: float  # of offered prompt tokens
    device_share: float
    migrations: int
    warmed: int  # answers the other tier prefilled in the background
    delayed_per_migration: float
    reader_stall_per_migration_s: float  # the reader's wait for tokens in a migrated answer


def outcome(policy: DiscoPolicy, served: Sequence[SimAnswer]) -> Outcome:
    ttft = [s.ttft_s for s in served]
    gaps = [g for s in served for g in s.gaps_s]
    moved = [s for s in served if s.migrated]
    return Outcome(
        float(np.mean(ttft)),
        float(np.percentile(ttft, 99)),
        float(np.percentile(gaps, 99)) if gaps else 0.0,
        sum(s.cost_usd for s in served),
        policy.spend.budget_used("cloud"),
        policy.spend.budget_used("device"),
        len(moved),
        sum(1 for s in served if s.warmed),
        statistics.mean(s.delayed_tokens for s in moved) if moved else 0.0,
        statistics.mean(s.reader_stall_s for s in moved) if moved else 0.0,
    )


def run_policy(
    planner: Planner | None, cfg: DiscoConfig, reqs: Sequence[tuple[int, int]], prof: Profiles, warm: bool = True
) -> Outcome:
    policy = DiscoPolicy(cfg, warm)
    return outcome(policy, simulate(policy, planner, reqs, prof))


def sweep(reqs: Sequence[tuple[int, int]], prof: Profiles) -> dict[str, Any]:
    """Every policy at every budget on one profile: {variant: {budget: {policy: Outcome}}}."""
    no_mig = DiscoConfig(migrate=False)
    fixed = {p.name: run_policy(p, no_mig, reqs, prof) for p in (Only("device"), Only("cloud"), AlwaysRace())}
    table: dict[str, Any] = {}
    for constrained in ("cloud", "device"):
        free = "device" if constrained == "cloud" else "cloud"
        rows: dict[float, dict[str, Outcome]] = {}
        for b in BUDGETS:
            row = {
                "disco": run_policy(None, DiscoConfig(constrained=constrained, budget=b, migrate=False), reqs, prof),
                "disco+migration": run_policy(None, DiscoConfig(constrained=constrained, budget=b), reqs, prof),
                "random-split": run_policy(RandomSplit(constrained, b), no_mig, reqs, prof),
                f"{free}-only": fixed[f"{free}-only"],
                f"{constrained}-only": fixed[f"{constrained}-only"],
                "always-race": fixed["always-race"],
            }
            if b == HEAD_BUDGET:  # the move as the paper makes it (the target prefills everything), beside ours
                row["disco+migration-no-warm"] = run_policy(
                    None, DiscoConfig(constrained=constrained, budget=b), reqs, prof, warm=False
                )
            rows[b] = row
        table[constrained] = rows
    return table


def decision_ms(reqs: Sequence[tuple[int, int]], n: int) -> float:
    """Wall time of ``n`` dispatch decisions (prompt observed, thresholds refitted as they are live)."""
    policy = DiscoPolicy(DiscoConfig())
    tiers = ("device", "cloud")
    start = time.perf_counter()
    for i in range(n):
        policy.plan("m", reqs[i % len(reqs)][0], tiers)
    return 1000 * (time.perf_counter() - start)


def reductions(row: dict[str, Outcome], free: str) -> dict[str, float]:
    """DiSCo against the best baseline at the same budget (the free tier alone, the random split)."""
    equal = [row[f"{free}-only"], row["random-split"]]
    d, m = row["disco"], row["disco+migration"]
    return {
        "mean_ttft_reduction": 1 - d.mean_ttft_s / min(o.mean_ttft_s for o in equal),
        "p99_ttft_reduction": 1 - d.p99_ttft_s / min(o.p99_ttft_s for o in equal),
        "cost_reduction_with_migration": 1 - m.cost_usd / d.cost_usd,
        "p99_tbt_ratio": m.p99_tbt_s / d.p99_tbt_s,
        "tokens_delayed_per_migration": m.delayed_per_migration,
        "reader_stall_per_migration_s": m.reader_stall_per_migration_s,
        "migrations": m.migrations,
        "warmed": m.warmed,
    }


def npu_prefill(prof: Profiles) -> Profiles:
    """The same phone prefilling ``NPU_PREFILL_SPEEDUP`` times faster at the same power (a stated
    what-if: phone NPUs and GPUs prefill an order of magnitude faster than their CPU cores)."""
    ttft = DeviceTTFT(prof.device_ttft.intercept_s, prof.device_ttft.per_token_s / NPU_PREFILL_SPEEDUP)
    e = prof.device_energy
    energy = DeviceEnergy(e.joules_per_token, e.joules_per_prefill_token / NPU_PREFILL_SPEEDUP)
    return replace(prof, device_ttft=ttft, device_energy=energy)


# --- live ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retry:
    """What the ``openai`` client does on a 429: up to ``max_retries`` more tries, each after the
    server's Retry-After when it gives one within ``max_wait_s``, else after an exponential backoff
    from ``base_s`` (capped at ``cap_s``; the client's jitter left out, so runs repeat)."""

    max_retries: int = 2
    base_s: float = 0.5
    cap_s: float = 8.0
    max_wait_s: float = 60.0

    def delay_s(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 0)."""
        try:
            told = float(retry_after) if retry_after is not None else None
        except ValueError:
            told = None
        if told is not None and 0 <= told <= self.max_wait_s:
            return told
        return min(self.base_s * 2**attempt, self.cap_s)


@dataclass(frozen=True)
class LiveAnswer:
    """One live request as the client saw it: refused (429 after every retry) or answered."""

    refusals: int  # 429s it was answered with (retried or not)
    ttft_s: float | None = None  # None: refused in the end
    cost_usd: float | None = None
    first_endpoint: str | None = None

    @property
    def refused(self) -> bool:
        return self.ttft_s is None


async def _one(
    session: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any], pin: str | None, retry: Retry
) -> LiveAnswer:
    headers = {"Authorization": f"Bearer {key}"} | ({"X-Edgeweave-Endpoint": pin} if pin else {})
    refusals = 0
    for attempt in range(retry.max_retries + 1):
        start = time.perf_counter()
        ttft, cost = None, None
        async with session.post(url + "/v1/completions", json=body, headers=headers) as resp:
            if resp.status == 429:
                refusals += 1
                wait = retry.delay_s(attempt, resp.headers.get("Retry-After"))
                await resp.read()
                if attempt < retry.max_retries:
                    await asyncio.sleep(wait)
                continue
            assert resp.status == 200, await resp.text()
            endpoint = resp.headers.get("X-Edgeweave-Endpoint")
            async for ev in read_events(resp):
                if ev.data == "[DONE]":
                    break
                chunk = json.loads(ev.data)
                assert "error" not in chunk, chunk
                if ttft is None and any(c.get("text") for c in chunk.get("choices", [])):
                    ttft = time.perf_counter() - start
                if chunk.get("usage"):
                    cost = chunk["usage"].get("cost_usd")
        return LiveAnswer(refusals, ttft, cost, endpoint)
    return LiveAnswer(refusals)


async def _replay_live(
    url: str, key: str, reqs: Sequence[tuple[float, int, int]], pin: str | None, retry: Retry
) -> list[LiveAnswer]:
    rng = random.Random(3)
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()

        async def go(at: float, prompt: int, output: int) -> LiveAnswer:
            await asyncio.sleep(max(0.0, at - (time.perf_counter() - start)))
            text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(prompt))
            body = {
                "model": LIVE_MODEL,
                "prompt": text,
                "max_tokens": output,
                "ignore_eos": True,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            return await _one(session, url, key, body, pin, retry)

        return await asyncio.gather(*(go(*r) for r in reqs))


def live_summary(results: Sequence[LiveAnswer]) -> dict[str, float]:
    """TTFT and cost over the answered requests; refusals counted, not averaged in."""
    answered = [r for r in results if not r.refused]
    ttft = [r.ttft_s for r in answered if r.ttft_s is not None]
    return {
        "mean_ttft_s": float(np.mean(ttft)) if ttft else math.nan,
        "p99_ttft_s": float(np.percentile(ttft, 99)) if ttft else math.nan,
        "cost_usd": sum(r.cost_usd or 0.0 for r in answered),
        "started_on_device": sum(1 for r in answered if (r.first_endpoint or "").startswith("device")),
        "requests": len(results),
        "refused_requests": sum(1 for r in results if r.refused),
        "refusals_retried": sum(r.refusals for r in answered),
    }


def live(trace: str, n: int, workdir: Path) -> dict[str, dict[str, float]]:
    """DiSCo vs device-only vs cloud-only through the coordinator, on real processes."""
    rows = load_trace(trace)[:n]
    rate = 2.0  # requests/s, within what the two cores serve
    span = (rows[-1].arrival_s - rows[0].arrival_s) or 1.0
    reqs = [((r.arrival_s - rows[0].arrival_s) * (n / rate) / span, *fit_to_context(r)) for r in rows]
    path = write(workdir / "cloud.toml", cloud_toml(LIVE_MODEL, CLOUD_KEY, 64.0))
    cloud = spawn("cloud", ["cloud", "serve", "--config", str(path)], workdir / "cloud.log")
    cloud.wait_ready(180)
    out: dict[str, dict[str, float]] = {}
    try:
        with LocalCluster(workdir) as cluster:
            profile = LocalDevice("phone-1", "phone", "llamacpp", threads=1, model=LIVE_MODEL)
            (phone,) = cluster.start_devices((profile,))
            upstream = (("gpu", cloud.url + "/v1", CLOUD_KEY, LIVE_MODEL),)
            cluster.start_coordinator(mdns=False, static=(phone.url,), cloud=upstream)
            cluster.wait_until(lambda up: "phone-1" in up, timeout_s=60)
            for name, pin in (("disco", None), ("device-only", "device:phone-1"), ("cloud-only", "cloud:gpu")):
                out[name] = live_summary(asyncio.run(_replay_live(cluster.url, cluster.api_key, reqs, pin, Retry())))
            metrics = urllib_get(cluster.url + "/metrics")
            out["disco"]["migrations"] = sum(
                float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("edgeweave_coordinator_migrations_total{")
            )  # fmt: skip
    finally:
        cloud.stop()
    return out


def urllib_get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url) as r:
        return r.read().decode()


# --- report ----------------------------------------------------------------------------------


def plot(table: dict[str, Any], backend: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, constrained in zip(axes[:2], ("cloud", "device"), strict=True):
        rows = table[constrained]
        for name in [n for n in next(iter(rows.values())) if n != "disco+migration-no-warm"]:
            ax.plot(BUDGETS, [rows[b][name].mean_ttft_s for b in BUDGETS], marker="o", label=name)
        ax.set_title(f"{constrained}-constrained: mean TTFT")
        ax.set_xlabel(f"budget (share of prompt tokens on the {constrained})")
        ax.set_ylabel("s")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax = axes[2]
    for constrained in ("cloud", "device"):
        rows = table[constrained]
        for name, style in (("disco", "--"), ("disco+migration", "-")):
            costs = [rows[b][name].cost_usd for b in BUDGETS]
            ax.plot(BUDGETS, costs, style, marker="o", label=f"{name} ({constrained}-constrained)")
    ax.set_title("total cost, $")
    ax.set_xlabel("budget")
    ax.legend(fontsize=7)
    fig.suptitle(f"DiSCo, phone profile from {backend}; requests: {CREDIT}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "fewer trace requests, cloud requests and timing rounds, 30 live requests", trace=True)
    args = ap.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    console = Console()
    n_sim, rounds, n_live = (600, 3, 30) if args.quick else (4000, 5, 200)
    with console.status("timing the device backends on both tiny models"):
        phones = {kind: phone_profile(kind, rounds) for kind in BACKENDS}
    for p in phones.values():
        console.print(
            f"phone ({p.backend}, {PHONE_PARAMETERS / 1e9:.2f}B): TTFT {1000 * p.ttft.intercept_s:.1f} ms + "
            f"{1000 * p.ttft.per_token_s:.2f} ms/token, {1 / p.tbt_s:.1f} tok/s, "
            f"{p.energy.joules_per_prefill_token:.3f} / {p.energy.joules_per_token:.3f} J per prefilled / decoded token"
        )
    with console.status("replaying the trace on the cloud engine at 0.9 load"):
        cloud_ttft, cloud_tbt, engine = cloud_profile(args.trace, 24 if args.quick else 160)
    console.print(
        f"cloud: TTFT median {1000 * statistics.median(cloud_ttft):.0f} ms, p99 "
        f"{1000 * float(np.percentile(cloud_ttft, 99)):.0f} ms (network included), TBT {1000 * cloud_tbt:.1f} ms"
    )
    trace = load_trace(args.trace)
    reqs = [(r.prompt_tokens, r.output_tokens) for r in trace if r.prompt_tokens + r.output_tokens <= PHONE_CONTEXT]
    reqs = reqs[:n_sim]
    tables: dict[str, Any] = {}
    scenarios = {
        kind: Profiles(p.ttft, p.tbt_s, p.energy, cloud_ttft, cloud_tbt, PHONE_CONTEXT) for kind, p in phones.items()
    }
    scenarios["llamacpp-npu"] = npu_prefill(scenarios["llamacpp"])
    for kind, prof in scenarios.items():
        with console.status(f"{len(reqs)} trace requests x every policy and budget ({kind} phone)"):
            tables[kind] = sweep(reqs, prof)
    main_table = tables["llamacpp"]
    for constrained in ("cloud", "device"):
        t = Table(title=f"{constrained}-constrained, llama.cpp phone: mean / p99 TTFT s, cost $")
        names = [n for n in next(iter(main_table[constrained].values())) if n != "disco+migration-no-warm"]
        t.add_column("budget")
        for name in names:
            t.add_column(name)
        for b in BUDGETS:
            row = main_table[constrained][b]
            t.add_row(
                f"{b:.1f}",
                *(f"{row[x].mean_ttft_s:.2f} / {row[x].p99_ttft_s:.2f} / {row[x].cost_usd:.2f}" for x in names),
            )
        console.print(t)
    overhead_ms = decision_ms(reqs, 100_000)
    console.print(f"100,000 dispatch decisions: {overhead_ms:.0f} ms")
    with console.status(f"live: {n_live} requests x 3 policies through the coordinator"):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            live_out = live(args.trace, n_live, Path(tmp))
    console.print("live", live_out)
    per_budget = {
        kind: {
            c: {b: reductions(tables[kind][c][b], "device" if c == "cloud" else "cloud") for b in BUDGETS}
            for c in ("cloud", "device")
        }
        for kind in scenarios
    }
    head = per_budget["llamacpp"]["cloud"][HEAD_BUDGET]
    dev = per_budget["llamacpp"]["device"][HEAD_BUDGET]
    npu = per_budget["llamacpp-npu"]

    def no_warm(kind: str, constrained: str) -> dict[str, float]:
        """The paper's move (no warm) at the headline budget: cost saved and tokens delayed per move."""
        row = tables[kind][constrained][HEAD_BUDGET]
        d, m = row["disco"], row["disco+migration-no-warm"]
        return {"cost": 1 - m.cost_usd / d.cost_usd, "delayed": m.delayed_per_migration}

    every = [r for c in ("cloud", "device") for r in per_budget["llamacpp"][c].values()]
    summary = {
        "mean_ttft_reduction": head["mean_ttft_reduction"],
        "p99_ttft_reduction": head["p99_ttft_reduction"],
        "cost_reduction_with_migration": head["cost_reduction_with_migration"],
        "tokens_delayed_per_migration": head["tokens_delayed_per_migration"],
        "p99_tbt_ratio": head["p99_tbt_ratio"],
        "reader_stall_per_migration_s": head["reader_stall_per_migration_s"],
        "migrations": head["migrations"],
        "mean_ttft_reduction_min": min(r["mean_ttft_reduction"] for r in every),
        "mean_ttft_reduction_max": max(r["mean_ttft_reduction"] for r in every),
        "p99_ttft_reduction_min": min(r["p99_ttft_reduction"] for r in every),
        "p99_ttft_reduction_max": max(r["p99_ttft_reduction"] for r in every),
        "device_constrained_mean_ttft_reduction": dev["mean_ttft_reduction"],
        "device_constrained_p99_ttft_reduction": dev["p99_ttft_reduction"],
        "device_constrained_cost_reduction_with_migration": dev["cost_reduction_with_migration"],
        "executorch_mean_ttft_reduction": per_budget["executorch"]["cloud"][0.5]["mean_ttft_reduction"],
        "executorch_p99_ttft_reduction": per_budget["executorch"]["cloud"][0.5]["p99_ttft_reduction"],
        "npu_prefill_cost_reduction_with_migration": per_budget["llamacpp-npu"]["cloud"][0.5][
            "cost_reduction_with_migration"
        ],
        "npu_prefill_device_constrained_cost_reduction_with_migration": per_budget["llamacpp-npu"]["device"][0.5][
            "cost_reduction_with_migration"
        ],
        "npu_prefill_tokens_delayed_per_migration": npu["cloud"][HEAD_BUDGET]["tokens_delayed_per_migration"],
        "npu_prefill_device_constrained_tokens_delayed_per_migration": npu["device"][HEAD_BUDGET][
            "tokens_delayed_per_migration"
        ],
        "no_warm_cost_reduction_with_migration": no_warm("llamacpp", "cloud")["cost"],
        "no_warm_tokens_delayed_per_migration": no_warm("llamacpp", "cloud")["delayed"],
        "npu_prefill_no_warm_cost_reduction_with_migration": no_warm("llamacpp-npu", "cloud")["cost"],
        "npu_prefill_no_warm_tokens_delayed_per_migration": no_warm("llamacpp-npu", "cloud")["delayed"],
        "npu_prefill_device_constrained_no_warm_tokens_delayed_per_migration": no_warm("llamacpp-npu", "device")[
            "delayed"
        ],
        "device_constrained_tokens_delayed_per_migration": dev["tokens_delayed_per_migration"],
        "warmed_answers": head["warmed"],
        "npu_prefill_mean_ttft_reduction": per_budget["llamacpp-npu"]["cloud"][0.5]["mean_ttft_reduction"],
        "decision_ms_per_100k_requests": overhead_ms,
        "live_disco_mean_ttft_s": live_out["disco"]["mean_ttft_s"],
        "live_device_only_mean_ttft_s": live_out["device-only"]["mean_ttft_s"],
        "live_cloud_only_mean_ttft_s": live_out["cloud-only"]["mean_ttft_s"],
        "live_disco_p99_ttft_s": live_out["disco"]["p99_ttft_s"],
        "live_device_only_p99_ttft_s": live_out["device-only"]["p99_ttft_s"],
        "live_cloud_only_p99_ttft_s": live_out["cloud-only"]["p99_ttft_s"],
        "live_disco_cost_vs_cloud_only": live_out["disco"]["cost_usd"] / max(live_out["cloud-only"]["cost_usd"], 1e-12),
        "refused_requests": sum(int(v["refused_requests"]) for v in live_out.values()),
        "live_disco_refused_requests": live_out["disco"]["refused_requests"],
        "live_refusals_retried": sum(int(v["refusals_retried"]) for v in live_out.values()),
        "live_migrations": live_out["disco"]["migrations"],
        "live_requests": n_live,
        "trace_requests": len(reqs),
    }
    save_result(
        "disco",
        args.quick,
        summary,
        trace=CREDIT,
        phone={
            k: {"ttft": asdict(p.ttft), "tbt_s": p.tbt_s, "energy": asdict(p.energy), "measured": p.measured}
            for k, p in phones.items()
        },
        cloud={"ttft_median_s": statistics.median(cloud_ttft), "tbt_s": cloud_tbt, "engine": engine},
        reductions={k: {c: {str(b): r for b, r in v.items()} for c, v in d.items()} for k, d in per_budget.items()},
        policies={
            k: {c: {str(b): {n: asdict(o) for n, o in row.items()} for b, row in rows.items()} for c, rows in t.items()}
            for k, t in tables.items()
        },
        live=live_out,
    )
    plot(main_table, "llama.cpp", RESULTS / "disco.png")
    for k, v in summary.items():
        console.print(f"{k:>48}: {v:.4g}" if isinstance(v, float) else f"{k:>48}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
