"""`edgeweave demo`: the local cluster end to end; `--serve` for other tools (the OpenAI client,
`circinus plan --url` and the traffic app attach to it); `--local` per backend."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import openai
import psutil
import pytest
from rich.console import Console

from apps.smarthome.cluster_demo import COMMANDS, Answer, _answers_table, _devices_table
from apps.smarthome.demo import describe
from tests.cli import run_cli


def test_describe_formats_tool_calls_and_passes_replies_through() -> None:
    assert describe('[{"call":"lights.dim","room":"kitchen","level":30}]') == "lights.dim(room='kitchen', level=30)"
    assert describe("You're welcome.") == "You're welcome."


def test_the_demo_tables_are_readable_at_80_columns() -> None:
    backend = {"backend": "executorch", "running": 1, "queued": 2, "completed": 13, "decode_tok_s": 412.4,
               "joules_per_token": 0.01234}  # fmt: skip
    devices = [
        {"id": "jetson-1", "kind": "jetson", "state": "up", "telemetry": {"cpu_percent": 87.0, "backends": [backend]}}
    ]
    calls = '[{"call":"thermostat.set","room":"office","degrees":21},{"call":"speaker.play","room":"living room"}]'
    answers = [Answer(COMMANDS[1], device="device:jetson-1", text=calls, done=True, ttft_s=0.1, usage_tokens=57)]
    console = Console(width=80, record=True)
    console.print(_devices_table(devices), _answers_table(answers))
    text = console.export_text()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    for whole in (
        "run/queue/done",
        "mJ/token",
        "executorch",
        "1/2/13",
        "device:jetson-1",
        "answer (tool calls)",
        "tokens",
    ):
        assert whole in text, text
    assert "…" not in text, text


def test_cluster_demo_answers_through_the_openai_client() -> None:
    proc = run_cli("demo", timeout=600, COLUMNS="250")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "all 5 devices discovered" in out and "API key" in out
    for device in ("phone-1", "pi-1", "jetson-1", "laptop-1", "hub-1"):
        assert device in out
    for call in ("lights.dim(", "door.lock(", "thermostat.set(", "speaker.play("):
        assert call in out, out
    assert "device:" in out and "(device)" in out  # which device served each answer, and DiSCo's plan
    # one model on both tiers: a race, a move each way, a preference kept
    assert re.search(r"race: DiSCo started the long command on a device and the cloud at once; "
                     r"(device:\w+-1|cloud:cloud) answered first", out), out  # fmt: skip
    assert re.search(r"device-to-cloud migration: the answer began on device:jetson-1 and moved to cloud:cloud", out)
    assert re.search(r"cloud-to-device migration: the answer began on cloud:cloud and moved to device:\w+-1", out)
    assert 'prefer "cloud": answered by cloud:cloud start to end' in out
    # the real model on both tiers, escalated on the device's p(True)
    assert re.search(
        r"capital of France\?\s+0\.\d+\s+(kept|escalated)\s+(device:laptop-1|cloud:cloud-smollm2)\s+[^\n]*Paris", out
    ), out
    cloud = r'with prefer "cloud" \(the same GGUF in the torch engine\): answered by cloud:cloud-smollm2: [^\n]*Paris'
    assert re.search(cloud, out), out
    # the agents: one household request through the cascade, who ran where, the house's changes, the verdict
    assert 'agents: "get the house ready for movie night' in out and "cascade: who ran where" in out
    assert "weave-agent-device @ device:hub-1" in out and "house changes:" in out
    assert re.search(r"checker: (passed|\d+ leaves wrong)[^\n]*; cost [\d.]+ µUSD over [123] run", out), out
    # home sounds: the door opens, the cloud makes a chime; the second, worded otherwise, is warm-started
    assert re.search(r'sound: front door opened -> "[^"]+": cache miss: all 50 steps ran', out), out
    assert re.search(r'sound: front door opened again -> "[^"]+": cache hit: \d+ of 50 steps ran', out), out


def _descendants_alive(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.is_running()]
    except psutil.NoSuchProcess:
        return []


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    key: str


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """``edgeweave demo --serve``: the demo cluster, for the tests of this module to attach to."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeweave.cli", "demo", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[0] == "coordinator:" and first[2] == "api-key:", first
        yield Served(proc, first[1], first[3])
    finally:
        if proc.poll() is None:
            proc.kill()


# The demo cluster kept up (``--serve``) costs a second start of every process (~45 s with its two tests):
# `make test-all`; `make test` runs the demo itself above, on the same cluster code.
@pytest.mark.slow
def test_serve_answers_through_the_openai_client(served: Served) -> None:
    client = openai.OpenAI(base_url=served.url + "/v1", api_key=served.key, max_retries=0)
    r = client.chat.completions.create(
        model="weave-home-device", messages=[{"role": "user", "content": "lock the front door"}], temperature=0
    )
    assert r.choices[0].message.content == '[{"call":"door.lock","door":"front"}]'


# ~50 s: `make test-all`; a pipeline across two daemons and the cloud stays in `make test`
# (tests/coordinator/circinus/test_executor.py::test_a_pipeline_runs_across_two_daemons_and_the_cloud)
@pytest.mark.slow
def test_circinus_plans_and_the_traffic_app_runs_on_the_demo_cluster(served: Served) -> None:
    auth = ("--url", served.url, "--api-key", served.key)
    done = run_cli("circinus", "plan", "apps/traffic/workload.yaml", *auth, timeout=600, COLUMNS="250")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tiers: device=pi-1, edge=jetson-1, cloud=cloud:cloud" in done.stdout
    assert "summarize=weave-home-" in done.stdout and "not served: min_accuracy: 0.99" in done.stdout
    app = subprocess.run(
        [sys.executable, "-m", "apps.traffic", *auth, "--seconds", "3"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert app.returncode == 0, app.stderr[-3000:]
    for system in ("Circinus", "per-query greedy"):
        assert re.search(
            rf"{system}: \d of 5 cameras served at the start; \d+ of \d+ frames within their SLO", app.stdout
        )
    assert "summarize@" in app.stdout
    bad = subprocess.run([sys.executable, "-m", "apps.traffic", *auth, "--tier", "edge=nowhere"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "--tier: edge=nowhere: the coordinator lists no such endpoint" in bad.stderr


@pytest.mark.slow
def test_serve_stops_every_process_on_sigterm(served: Served) -> None:
    children = _descendants_alive(served.proc.pid)
    assert len(children) >= 7  # two cloud services, the coordinator and four daemons
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(60) == 0
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, alive


def test_local_demo_runs_on_every_backend(device_checkpoint) -> None:  # noqa: ANN001 - fixture
    proc = run_cli("demo", "--local", timeout=600, COLUMNS="200")
    assert proc.returncode == 0, proc.stderr
    for backend in ("torch", "llamacpp", "executorch"):
        assert f"{backend} ready" in proc.stdout
    assert proc.stdout.count("lights.dim(") == 3  # the first command answered on each backend
    assert proc.stdout.count("door.lock(") == 3
