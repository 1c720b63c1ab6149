"""``edgeweave status`` against a real local cluster (it reads the coordinator's own response models), and
``edgeweave --version``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster, prepare_models
from edgeweave.cluster.processes import free_port
from tests.cli import run_cli

PI = LocalDevice("pi-1", "pi", "llamacpp", threads=1, max_queue=2)
WIDTH = 80


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    prepare_models((PI,))
    with LocalCluster(tmp_path_factory.mktemp("status")) as c:
        c.start_coordinator(cloud=(("far", "http://127.0.0.1:9/v1", "ew-far", "weave-home-cloud"),))
        c.start_devices((PI,))
        c.wait_until(lambda up: up == {PI.id}, timeout_s=10)
        yield c


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "edgeweave 0.1.0"


def test_status_shows_devices_and_models_within_80_columns(cluster: LocalCluster) -> None:
    proc = run_cli("status", "--url", cluster.url, "--api-key", cluster.api_key, COLUMNS=str(WIDTH))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"coordinator {cluster.url}: ok, 1 of 1 devices up" in out
    for needle in ("pi-1", "up", "weave-home-device/llamacpp", "device:pi-1", "cloud:far"):
        assert needle in out, out
    assert max(len(line) for line in out.splitlines()) <= WIDTH, out


def test_a_bad_key_is_one_line(cluster: LocalCluster) -> None:
    proc = run_cli("status", "--url", cluster.url, "--api-key", "ew-wrong")
    assert proc.returncode == 2
    assert one_error_line(proc.stderr).startswith("edgeweave: error: --api-key: the coordinator at")


def test_an_unreachable_coordinator_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_cli("status", "--url", url, "--api-key", "ew-any")
    assert proc.returncode == 2
    assert one_error_line(proc.stderr).startswith(f"edgeweave: error: --url: cannot reach a coordinator at {url}")
