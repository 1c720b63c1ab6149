"""`edgeweave demo`: the local cluster end to end; `--serve` for other tools; `--local` per backend."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import openai
import psutil

from apps.smarthome.demo import describe
from tests.cli import run_cli


def test_describe_formats_tool_calls_and_passes_replies_through() -> None:
    assert describe('[{"call":"lights.dim","room":"kitchen","level":30}]') == "lights.dim(room='kitchen', level=30)"
    assert describe("You're welcome.") == "You're welcome."


def test_cluster_demo_answers_through_the_openai_client() -> None:
    proc = run_cli("demo", timeout=600, COLUMNS="250")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "all 3 devices discovered" in out and "API key" in out
    for device in ("phone-1", "pi-1", "jetson-1"):
        assert device in out
    for call in ("lights.dim(", "door.lock(", "thermostat.set(", "speaker.play("):
        assert call in out, out
    assert "device:" in out  # which device served each answer
    assert re.search(r"migration: the answer began on device:jetson-1 and moved to device:(phone|pi)-1", out), out


def _descendants_alive(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.is_running()]
    except psutil.NoSuchProcess:
        return []


def test_serve_prints_the_attach_line_first_and_stops_on_sigterm() -> None:
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
        url, key = first[1], first[3]
        children = _descendants_alive(proc.pid)
        assert len(children) >= 4  # the coordinator and three daemons
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        r = client.chat.completions.create(
            model="weave-home-device", messages=[{"role": "user", "content": "lock the front door"}], temperature=0
        )
        assert r.choices[0].message.content == '[{"call":"door.lock","door":"front"}]'
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, alive
    finally:
        if proc.poll() is None:
            proc.kill()


def test_local_demo_runs_on_every_backend(device_checkpoint) -> None:  # noqa: ANN001 - fixture
    proc = run_cli("demo", "--local", timeout=600, COLUMNS="200")
    assert proc.returncode == 0, proc.stderr
    for backend in ("torch", "llamacpp", "executorch"):
        assert f"{backend} ready" in proc.stdout
    assert proc.stdout.count("lights.dim(") == 3  # the first command answered on each backend
    assert proc.stdout.count("door.lock(") == 3
