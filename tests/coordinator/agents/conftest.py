"""One agents cluster for this package's live tests: a torch device daemon and two cloud services
(the device's model, where a moved answer or loop continues, and the stronger weave-agent-cloud)
behind a coordinator.  The mobile-agent test kills the device, so it runs last (``test_zz_*``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster

DEVICE = LocalDevice("hub-1", "jetson", "torch", threads=1, max_queue=4, model="weave-agent-device")


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("agents"), heartbeat_s=0.3) as c:
        c.start_clouds({"cloud-small": "weave-agent-device", "cloud": "weave-agent-cloud"})
        (device,) = c.start_devices((DEVICE,))
        c.start_coordinator(mdns=False, static=(device.url,))
        c.wait_until(lambda up: up == {DEVICE.id}, timeout_s=30)
        yield c
