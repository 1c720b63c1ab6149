"""An answer served by a Ray-deployed cloud (``edgeweave cloud serve`` with ``[cloud.ray]``, a real
process) migrates to a device through the coordinator, and back, with greedy identity: the tokens
equal what one endpoint produces alone (the replica's streamed chunks carry token ids).

Slow: about 95 s on a shared 2-core machine (Ray, a device daemon and the coordinator start first).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeweave.cluster.cluster_files import LocalDevice, write
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.cluster.processes import ServiceProcess, free_port, spawn
from tests.coordinator.disco.test_live import BODY, _answer

MODEL = "weave-home-cloud"
KEY = "ray-migration-key-0123456789"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("ray-cloud")
    toml = (
        f"[cloud]\nmodel = {json.dumps(MODEL)}\nport = {free_port()}\napi_keys = [{json.dumps(KEY)}]\n"
        "\n[cloud.engine]\nkv_cache_mb = 8.0\n\n[cloud.ray]\nreplicas = 1\ncpus_per_replica = 0.5\n"
    )
    svc = spawn("cloud", ["cloud", "serve", "--config", str(write(tmp / "cloud.toml", toml))], tmp / "cloud.log")
    svc.wait_ready(240)
    yield svc
    assert svc.stop(60) == 0


@pytest.fixture()
def cluster(ray_cloud: ServiceProcess, tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path) as c:
        (phone,) = c.start_devices((LocalDevice("phone-1", "phone", "torch", threads=1, model=MODEL),))
        c.start_coordinator(mdns=False, static=(phone.url,), cloud=(("ray", ray_cloud.url + "/v1", KEY, MODEL),))
        c.wait_until(lambda up: "phone-1" in up, timeout_s=30)
        yield c


def test_a_ray_served_answer_migrates_to_the_device_and_back_with_the_same_tokens(cluster: LocalCluster) -> None:
    url, key = cluster.url, cluster.api_key
    alone = _answer(url, key, BODY, "device:phone-1").ids
    assert len(alone) > 8
    assert _answer(url, key, BODY, "cloud:ray").ids == alone
    for start, other in (("cloud:ray", "device:phone-1"), ("device:phone-1", "cloud:ray")):
        got = _answer(url, key, BODY, start, migrate_after=5)
        assert got.ids == alone, start
        assert got.endpoints[0] == start and got.endpoints[-1] == other and got.endpoints.index(other) >= 5
