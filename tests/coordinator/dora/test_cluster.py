"""``edgeweave dora plan`` and ``dora run`` against a live cluster: a coordinator and two device
daemons as processes; profiles measured on the devices, a plan run on them for real."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coordinator.dora.remote import call
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.wire.auth import ClusterKey
from tests.cli import run_cli


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("dora-cluster")) as c:
        devices = c.start_devices(
            (LocalDevice("pi-1", "pi", "llamacpp", threads=1), LocalDevice("jetson-1", "jetson", "llamacpp")),
            advertise=False,
        )
        c.start_coordinator(mdns=False, static=tuple(d.url for d in devices))
        c.wait_until(lambda up: {"pi-1", "jetson-1"} <= set(up), timeout_s=30)
        yield c


def _cli(c: LocalCluster, *args: str) -> tuple[int, str, str]:
    out = run_cli("dora", *args, "--url", c.url, "--api-key", c.api_key, "--seq-len", "16", timeout=300)
    return out.returncode, out.stdout, out.stderr


def test_plan_lists_the_pareto_set_over_the_measured_devices(cluster: LocalCluster, tmp_path: Path) -> None:
    code, out, err = _cli(cluster, "plan", "--batch", "4")
    assert code == 0, err
    assert "pi-1[" in out or "jetson-1[" in out
    assert "latency s" in out and "energy J" in out


def test_run_executes_a_plan_on_the_devices_inference_and_training(cluster: LocalCluster) -> None:
    code, out, err = _cli(cluster, "run", "--batch", "4", "--steps", "2")
    assert code == 0, err
    assert "measured" in out
    code, out, err = _cli(cluster, "run", "--training", "--batch", "4", "--steps", "2")
    assert code == 0, err
    assert "losses: " in out


def test_bad_requests_name_the_field_and_exit_2(cluster: LocalCluster) -> None:
    code, _, err = _cli(cluster, "plan", "--batch", "0")
    assert code == 2 and "batch" in err
    code, _, err = _cli(cluster, "plan", "--model", "no-such-model")
    assert code == 2 and "model" in err
    code, _, err = _cli(cluster, "run", "--plan", "99")
    assert code == 2 and "plan: 99" in err


def test_a_device_leaving_mid_run_makes_the_run_replan_over_those_left(tmp_path: Path) -> None:
    with LocalCluster(tmp_path) as c:
        profiles = (LocalDevice("pi-1", "pi", "llamacpp", threads=1), LocalDevice("pi-2", "pi", "llamacpp"))
        a, b = c.start_devices(profiles, advertise=False)
        c.start_coordinator(mdns=False, static=(a.url, b.url))
        c.wait_until(lambda up: {"pi-1", "pi-2"} <= set(up), timeout_s=30)
        key = ClusterKey(c.secret.encode())
        body = {"model": "weave-home-device", "batch": 4, "seq_len": 16, "steps": 300}
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(_post, c, "/v1/dora/run", body)
            loaded: dict[str, list[str]] = {}
            deadline = time.monotonic() + 60
            while not loaded and time.monotonic() < deadline and not answer.done():  # kill the first to hold a stage
                for name, svc in (("pi-1", a), ("pi-2", b)):
                    stages = json.loads(call(svc.url, key, "GET", "/v1/dora/stages"))["data"]
                    if stages:
                        loaded[name] = [s["id"] for s in stages]
                        svc.kill()
                        break
                time.sleep(0.05)
            assert loaded, "no stage was ever loaded"
            done = answer.result(timeout=300)
        devices = {s["device"] for p in done["pipelines"] for s in p["stages"]}
        assert set(loaded) <= devices  # the device killed was in the plan
        assert done["measured"]["replans"] == 1 and done["measured"]["steps"] == 300


def _post(c: LocalCluster, path: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        c.url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {c.api_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]
