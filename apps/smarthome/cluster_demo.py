"""`make demo`: a local smart-home cluster answering through the OpenAI client.

Starts the cloud service (weave-home-cloud), a coordinator that lists it as
``cloud:cloud``, and three device daemons as separate processes (a "phone"
on ExecuTorch, a "pi" on llama.cpp with one thread, a "jetson" on torch):
the demo cluster, whose device, edge and cloud tiers the traffic app plans
over (``python -m apps.traffic --url ... --api-key ...``).  It waits for
mDNS discovery, then sends smart-home commands through the official
``openai`` client with streaming, showing a live table of the devices and
the answers as they stream.  Last, one answer is moved mid-stream from the
jetson to another device (DiSCo's token-level migration) and the move is
printed.  ``--serve`` keeps the cluster up until SIGTERM; its first stdout
line is ``coordinator: <URL> api-key: <KEY>``.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from openai import AsyncOpenAI
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from apps.smarthome.demo import describe
from edgeweave.cluster.local_cluster import DEMO_PROFILES, LocalCluster, runtime_exports

MODEL = "weave-home-device"
COMMANDS = (
    "dim the kitchen lights to 30% and lock the front door",
    "make it 21 degrees in the office, then play jazz in the living room",
    "turn off the bedroom lights",
    "unlock the garage door",
    "set the hallway thermostat to 19 degrees",
    "play rock in the kitchen",
    "lock the back door",
    "thanks",
)
DISCOVERY_TIMEOUT_S = 60.0


@dataclass
class Answer:
    command: str
    device: str = ""
    text: str = ""
    chunks: int = 0
    started: float = field(default_factory=time.perf_counter)
    ttft_s: float | None = None
    done: bool = False
    usage_tokens: int | None = None


def _devices_table(devices: list[dict[str, object]]) -> Table:
    """One row per backend of each device in the coordinator's ``/v1/devices``; fits 80 columns."""
    t = Table(title="devices (live, the coordinator's /v1/devices)", box=box.SIMPLE_HEAD)
    for col in ("device", "backend", "state"):
        t.add_column(col, no_wrap=True)
    for col in ("run/queue/done", "tok/s", "CPU %", "mJ/token"):
        t.add_column(col, justify="right")
    for d in devices:
        tel = d.get("telemetry") or {}
        for b in tel.get("backends", []):  # type: ignore[union-attr]
            t.add_row(
                str(d["id"]),
                b["backend"],
                str(d["state"]),
                f"{b['running']}/{b['queued']}/{b['completed']}",
                f"{b['decode_tok_s']:.0f}",
                f"{tel['cpu_percent']:.0f}",  # type: ignore[index]
                f"{b['joules_per_token'] * 1000:.2f}",
            )
    return t


def _answers_table(answers: list[Answer]) -> Table:
    """The commands and their streaming answers; the text columns wrap at word breaks to fit 80 columns."""
    t = Table(title=f"smart-home commands -> {MODEL} (openai client, streamed)", box=box.SIMPLE_HEAD)
    t.add_column("command", max_width=15)
    t.add_column("served by", no_wrap=True)
    t.add_column("answer (tool calls)", min_width=22, overflow="fold")
    t.add_column("TTFT", justify="right", no_wrap=True)
    t.add_column("tokens", justify="right", no_wrap=True)
    for a in answers:
        shown = describe(a.text) if a.done else a.text + "▌"
        ttft = f"{a.ttft_s * 1000:.0f} ms" if a.ttft_s is not None else ""
        t.add_row(a.command, a.device, shown, ttft, str(a.usage_tokens or a.chunks))
    return t


async def _ask(client: AsyncOpenAI, answer: Answer) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": answer.command}],
        temperature=0,
        max_tokens=200,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        answer.device = chunk.system_fingerprint or answer.device
        if chunk.usage is not None:
            answer.usage_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.delta.content:
                if answer.ttft_s is None:
                    answer.ttft_s = time.perf_counter() - answer.started
                answer.text += choice.delta.content
                answer.chunks += 1
    answer.done = True


MIGRATE_AFTER = 6


async def _migrate(client: AsyncOpenAI, console: Console) -> None:
    """One answer started on the jetson and moved to another device after a few tokens."""
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": COMMANDS[0]}],
        temperature=0,
        max_tokens=200,
        stream=True,
        extra_headers={"X-Edgeweave-Endpoint": "device:jetson-1", "X-Edgeweave-Migrate-After": str(MIGRATE_AFTER)},
    )
    parts: list[tuple[str, str]] = []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append((chunk.system_fingerprint or "", choice.delta.content))
    source = parts[0][0]
    moved = next((i for i, (endpoint, _) in enumerate(parts) if endpoint != source), None)
    if moved is None:
        console.print(f"\nmigration: the answer stayed on {source} (no other device could take it)")
        return
    before, after = "".join(t for _, t in parts[:moved]), "".join(t for _, t in parts[moved:])
    console.print(
        f"\nmigration: the answer began on [bold]{source}[/] and moved to [bold]{parts[-1][0]}[/] after "
        f"{moved} chunks, one uninterrupted stream: [dim]{before}[/]|{after}"
    )


async def _converse(cluster: LocalCluster, console: Console) -> None:
    client = AsyncOpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=3)
    answers = [Answer(c) for c in COMMANDS]
    with Live(console=console, refresh_per_second=8) as live:
        tasks = [asyncio.create_task(_ask(client, a)) for a in answers]
        while not all(t.done() for t in tasks):
            devices = _devices_table(await asyncio.to_thread(cluster.devices_view))
            live.update(Group(devices, _answers_table(answers)))
            await asyncio.sleep(0.25)
        await asyncio.gather(*tasks)
        live.update(Group(_devices_table(await asyncio.to_thread(cluster.devices_view)), _answers_table(answers)))
    await _migrate(client, console)
    await client.close()


def _wait_for_sigterm() -> None:
    stop = False

    def handler(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    while not stop:
        time.sleep(0.2)


_RUNTIME = {"gguf": "GGUF (llama.cpp)", "pte": ".pte (ExecuTorch)"}


def _export_models(console: Console) -> None:
    """The runtime files the daemons load, exported once into the cache with a progress line."""
    exports = [e for e in runtime_exports(DEMO_PROFILES) if not e.cached]
    if not exports:
        console.print(f"runtime files for {MODEL}: already exported (cached)")
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("exporting", total=len(exports))
        for e in exports:
            progress.update(task, description=f"exporting {e.model} to {_RUNTIME[e.target]}")
            e.run()
            progress.advance(task)
    console.print(f"exported {MODEL} to " + " and ".join(_RUNTIME[e.target] for e in exports) + " (once, cached)")


def run_cluster_demo(serve: bool = False) -> int:
    console = Console(stderr=serve)  # --serve keeps stdout for the attach line
    console.print(
        "[bold]edgeweave demo[/]: a smart-home cluster on this machine: the cloud service, a coordinator and "
        + ", ".join(f"{p.id} ({p.backend})" for p in DEMO_PROFILES)
        + ", each its own process on 127.0.0.1"
    )
    with tempfile.TemporaryDirectory(prefix="edgeweave-demo-") as tmp, LocalCluster(Path(tmp)) as cluster:
        _export_models(console)
        with console.status("starting the cloud service (weave-home-cloud) and the coordinator"):
            cluster.start_cloud()
            cluster.start_coordinator()
        console.print(f"coordinator on [bold]{cluster.url}[/] (mDNS on 127.0.0.1)")
        with console.status(f"starting {len(DEMO_PROFILES)} device daemons: " + ", ".join(p.id for p in DEMO_PROFILES)):
            cluster.start_devices(DEMO_PROFILES)
            t = cluster.wait_until(lambda up: len(up) == len(DEMO_PROFILES), DISCOVERY_TIMEOUT_S)
        console.print(
            f"all {len(DEMO_PROFILES)} devices discovered over mDNS and verified ({t:.2f} s after the last was ready)"
        )
        if serve:
            print(f"coordinator: {cluster.url} api-key: {cluster.api_key}", flush=True)
            _wait_for_sigterm()
            return 0
        console.print(f"API key (clients send it as Bearer): [bold]{cluster.api_key}[/]")
        asyncio.run(_converse(cluster, console))
        console.print("\nstopping the cluster")
    return 0
