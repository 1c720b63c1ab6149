"""The emulated home network: devices in namespaces behind one shaped access point really contend,
and a CPU quota really slows a device down (skipped, with the reason, where namespaces are not
available)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coordinator.dora.remote import call, profile
from edgeweave.auth import ClusterKey
from edgeweave.cluster_files import DeviceProfile, device_toml, new_secret, write
from edgeweave.emulation import Lan, unavailable

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"loopback only: {REASON}")
AP_MBIT = 20.0
PAYLOAD = 1 << 20


def test_transfers_share_the_access_point_and_quotas_slow_devices(tmp_path: Path) -> None:
    secret = new_secret()
    key = ClusterKey(secret.encode())
    with Lan(ap_mbit=AP_MBIT) as lan:
        fast = lan.add("edge-1", link_mbit=100)
        slow = lan.add("pi-1", link_mbit=100, cpu_share=0.25)
        services = []
        try:
            for host in (fast, slow):
                prof = DeviceProfile(host.name, "pi", "llamacpp", threads=1, host=host.address)
                cfg = write(tmp_path / f"{host.name}.toml", device_toml(prof, secret, advertise=False))
                args = ["device", "serve", "--config", str(cfg)]
                services.append(lan.spawn(host, args, tmp_path / f"{host.name}.log"))
            for svc in services:
                svc.wait_ready(120)
            urls = [svc.url for svc in services]
            assert all(lan.gateway.rsplit(".", 1)[0] in u for u in urls)

            def echo(url: str) -> float:
                t0 = time.perf_counter()
                call(url, key, "POST", "/v1/dora/echo", bytes(PAYLOAD))
                return 2 * PAYLOAD / (time.perf_counter() - t0)  # bytes/s, both ways

            ap = AP_MBIT * 1e6 / 8
            alone = echo(urls[0])
            assert 0.5 * ap < alone < 1.3 * ap, alone
            with ThreadPoolExecutor(2) as pool:
                shared = list(pool.map(echo, urls))
            assert all(rate < 0.75 * alone for rate in shared), (alone, shared)  # they contend
            assert 0.5 * ap < sum(shared) < 1.3 * ap, shared
            if lan.notices:
                pytest.skip(f"the network contends; CPU quotas are not available here: {lan.notices}")
            quick, quota = (profile(u, key, "weave-home-device", batch=2, seq_len=16, rounds=3) for u in urls)
            assert sum(quota["forward_s"]) > 2 * sum(quick["forward_s"])  # a quarter of a core
        finally:
            for svc in services:
                svc.stop()
