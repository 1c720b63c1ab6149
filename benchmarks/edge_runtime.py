"""Edge runtime benchmark: discovery latency, coordinator overhead per streamed
token, and concurrent streams admitted before 429.

Runs the real processes of ``make demo`` (a coordinator and three device
daemons on loopback with mDNS):

* discovery: a new daemon's HTTP server comes up (mDNS registration starts
  right after) -> the coordinator lists it as up (handshake + first telemetry
  done), repeated with fresh daemons;
* overhead: the same 256-token stream from the pi (llama.cpp, 1 thread)
  called directly (signed, as the coordinator calls it) and through the
  coordinator's ``/v1/completions`` SSE, alternated, medians;
* concurrency: k simultaneous streams through the coordinator for growing k;
  the largest k with no 429.

Writes ``benchmarks/results/edge_runtime.json`` (flat ``summary``) and
``edge_runtime.png``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from benchmarks.results_io import RESULTS, parser, save_result
from coordinator.cluster.device_client import DeviceClient
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import DEMO_PROFILES, LocalCluster, prepare_models
from edgeweave.cluster.processes import free_port
from edgeweave.generation.sampling import SamplingParams
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.protocol import GenerateRequest, TokenMessage
from edgeweave.wire.sse import read_events

MODEL = "weave-home-device"
PROMPT = "the"


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


async def measure_concurrency(cluster: LocalCluster, max_k: int, n: int) -> list[dict[str, int]]:
    async def one(session: aiohttp.ClientSession) -> int:
        body = {"model": MODEL, "prompt": PROMPT, "max_tokens": n, "temperature": 0, "stream": True, "ignore_eos": True}
        async with session.post(
            cluster.url + "/v1/completions", json=body, headers={"Authorization": f"Bearer {cluster.api_key}"}
        ) as resp:
            if resp.status == 200:
                async for _ in read_events(resp):
                    pass
            return resp.status

    rows = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for k in range(1, max_k + 1):
            statuses = await asyncio.gather(*(one(session) for _ in range(k)))
            rows.append({"k": k, "ok": statuses.count(200), "rejected": statuses.count(429)})
            await asyncio.sleep(0.5)  # let every queue drain before the next step
    return rows


def plot(discovery: list[float], overhead: dict[str, float], ramp: list[dict[str, int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    ax[0].bar(range(1, len(discovery) + 1), discovery)
    ax[0].set(title="discovery: socket up -> usable", xlabel="daemon", ylabel="s")
    ax[1].bar(["direct", "via coordinator"], [overhead["direct_ms_per_token"], overhead["coordinator_ms_per_token"]])
    ax[1].set(title="streamed token time (median)", ylabel="ms / token")
    ks = [r["k"] for r in ramp]
    ax[2].plot(ks, [r["ok"] for r in ramp], "o-", label="served")
    ax[2].plot(ks, [r["rejected"] for r in ramp], "x-", label="429")
    ax[2].set(title="simultaneous streams", xlabel="streams started at once", ylabel="count")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__, "fewer rounds")
    args = ap.parse_args(argv)
    rounds = 4 if args.quick else 12
    discovery_rounds = 3 if args.quick else 7
    n_tokens = 256

    from rich.console import Console

    console = Console(width=120)
    capacity = sum(1 + p.max_queue for p in DEMO_PROFILES)
    with tempfile.TemporaryDirectory(prefix="edgeweave-bench-") as tmp, LocalCluster(Path(tmp)) as cluster:
        with console.status("starting the demo cluster"):
            prepare_models(DEMO_PROFILES)
            cluster.start_coordinator()
            cluster.start_devices(DEMO_PROFILES)
            cluster.wait_until(lambda up: len(up) == len(DEMO_PROFILES), 60)
        with console.status("discovery latency"):
            discovery = measure_discovery(cluster, discovery_rounds)
        with console.status("coordinator overhead per token"):
            overhead = asyncio.run(measure_overhead(cluster, "pi-1", rounds, n_tokens))
        with console.status("concurrent streams"):
            ramp = asyncio.run(measure_concurrency(cluster, capacity + 4, 128))
    max_ok = max((r["k"] for r in ramp if r["rejected"] == 0), default=0)
    summary = {
        "discovery_s_p50": statistics.median(discovery),
        "discovery_s_max": max(discovery),
        "coordinator_overhead_ms_per_token": overhead["coordinator_overhead_ms_per_token"],
        "direct_ms_per_token": overhead["direct_ms_per_token"],
        "coordinator_ms_per_token": overhead["coordinator_ms_per_token"],
        "coordinator_vs_direct": overhead["coordinator_vs_direct"],
        "max_concurrent_streams": max_ok,
        "configured_capacity": capacity,
    }
    save_result("edge_runtime", args.quick, summary, discovery_s=discovery, overhead=overhead, concurrency_ramp=ramp)
    plot(discovery, overhead, ramp, RESULTS / "edge_runtime.png")
    for k, v in summary.items():
        console.print(f"{k:>36}: {v:.4g}" if isinstance(v, float) else f"{k:>36}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
