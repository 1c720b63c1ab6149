"""One daemon both advertised by mDNS and listed in ``[coordinator.discovery] static`` is one sighting:
admitted once, and the coordinator does not warn about it on every heartbeat."""

from __future__ import annotations

import time
from pathlib import Path

from coordinator.cluster.discovery import Sighting, UniqueSightings
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster, prepare_models

PI = LocalDevice("pi-1", "pi", "llamacpp", threads=1, max_queue=2)
HEARTBEAT_S = 0.1
HEARTBEATS_WATCHED = 20


def test_a_device_seen_by_mdns_and_listed_statically_is_one_sighting(tmp_path: Path) -> None:
    prepare_models((PI,))
    with LocalCluster(tmp_path, heartbeat_s=HEARTBEAT_S) as cluster:
        (device,) = cluster.start_devices((PI,))
        cluster.start_coordinator(mdns=True, static=(device.url,))
        cluster.wait_until(lambda up: up == {PI.id}, timeout_s=10)
        time.sleep(HEARTBEATS_WATCHED * HEARTBEAT_S)  # the coordinator reconsiders unused sightings every beat
        assert [d["id"] for d in cluster.devices_view()] == [PI.id]
        log = cluster.coordinator.log_text() if cluster.coordinator else ""
        assert log.count("admitted via") == 1, log
        assert "WARNING" not in log, log


class Recorder:
    """A :class:`DiscoverySink` that keeps what reached it, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def found(self, sighting: Sighting) -> None:
        self.events.append(("found", sighting.name))

    def lost(self, name: str) -> None:
        self.events.append(("lost", name))


URL = "http://127.0.0.1:8081"
STATIC = Sighting(name=URL, url=URL, source="static")
MDNS = Sighting(name="pi-1._edgeweave._tcp.local.", url=URL, source="mdns", device_id="pi-1")


def test_one_name_per_url_reaches_the_registry() -> None:
    sink = Recorder()
    unique = UniqueSightings(sink)
    unique.found(STATIC)
    unique.found(MDNS)
    unique.found(MDNS)  # mDNS re-announces
    assert sink.events == [("found", STATIC.name)]
    unique.lost(MDNS.name)  # the shadow's goodbye changes nothing
    assert sink.events == [("found", STATIC.name)]


def test_the_other_name_takes_over_when_the_first_is_lost_or_moves() -> None:
    sink = Recorder()
    unique = UniqueSightings(sink)
    unique.found(MDNS)
    unique.found(STATIC)
    unique.lost(MDNS.name)
    assert sink.events == [("found", MDNS.name), ("lost", MDNS.name), ("found", STATIC.name)]

    sink.events.clear()
    moved = Sighting(name=STATIC.name, url="http://127.0.0.1:9090", source="static")
    unique.found(MDNS)
    unique.found(moved)  # the URL's owner moves: the mDNS name holds the URL now
    assert sink.events == [("found", MDNS.name), ("found", STATIC.name)]
    unique.found(Sighting(name=MDNS.name, url=moved.url, source="mdns"))  # onto a URL the sink knows by another name
    assert sink.events[-1] == ("lost", MDNS.name)
