"""A server whose port is taken: one line on stderr naming host:port and the config field, exit 2."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeweave.cluster.cluster_files import LocalDevice, coordinator_toml, device_toml, new_secret, write
from tests.cli import run_cli


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def assert_port_in_use(args: list[str], port: int, field: str) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeweave")]
    assert errors == [f"edgeweave: error: {field}: cannot listen on 127.0.0.1:{port}: address already in use"]


def test_device_serve_on_a_taken_port(tmp_path: Path, taken_port: int) -> None:
    profile = LocalDevice("pi-1", "pi", "torch", threads=1, port=taken_port)
    config = write(tmp_path / "device.toml", device_toml(profile, new_secret(), advertise=False))
    assert_port_in_use(["device", "serve", "--config", str(config)], taken_port, "device.port")


def test_coordinator_serve_on_a_taken_port(tmp_path: Path, taken_port: int) -> None:
    text = coordinator_toml(new_secret(), "ew-key", mdns=False).replace("port = 0", f"port = {taken_port}")
    config = write(tmp_path / "coordinator.toml", text)
    assert_port_in_use(["coordinator", "serve", "--config", str(config)], taken_port, "coordinator.port")
