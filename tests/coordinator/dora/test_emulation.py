"""The emulated home network: devices in namespaces behind one shaped access point really contend,
and a CPU quota really slows a device down (skipped, with the reason, where namespaces are not
available)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coordinator.dora.emulation import Lan, unavailable
from coordinator.dora.remote import call, profile
from edgeweave.cluster.cluster_files import LocalDevice, new_secret
from edgeweave.wire.auth import ClusterKey

REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"loopback only: {REASON}")
AP_MBIT = 20.0
PAYLOAD = 1 << 20


@pytest.mark.slow  # ~24 s; the emulated link's delays and retransmits stay in `make test` (below)
def test_transfers_share_the_access_point_and_quotas_slow_devices(tmp_path: Path) -> None:
    secret = new_secret()
    key = ClusterKey(secret.encode())
    with Lan(ap_mbit=AP_MBIT) as lan:
        fast = lan.add("edge-1", link_mbit=100)
        slow = lan.add("pi-1", link_mbit=100, cpu_share=0.25)
        services = []
        try:
            for host in (fast, slow):
                prof = LocalDevice(host.name, "pi", "llamacpp", threads=1)
                services.append(lan.spawn_device(host, prof, secret, tmp_path))
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
            t0 = time.perf_counter()
            with ThreadPoolExecutor(2) as pool:
                shared = list(pool.map(echo, urls))
            together = 2 * 2 * PAYLOAD / (time.perf_counter() - t0)
            # they contend: one access point's worth between them (the flows need not start together,
            # so only the slower one is surely below its rate alone)
            assert 0.5 * ap < together < 1.3 * ap, (together, shared)
            assert min(shared) < 0.75 * alone, (alone, shared)
            if lan.notices:
                pytest.skip(f"the network contends; CPU quotas are not available here: {lan.notices}")
            # big enough that a layer outlasts the quarter-core quota of a 4 ms period (short bursts fit in it)
            quick, quota = (profile(u, key, "weave-home-device", batch=8, seq_len=64, rounds=3) for u in urls)
            assert sum(quota.forward_s) > 2 * sum(quick.forward_s)  # a quarter of a core
        finally:
            for svc in services:
                svc.stop()


async def test_the_emulated_link_delays_each_leg_and_retransmits_lost_segments() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from edgeweave.serving.emulated_link import RTO_S, SEGMENT_BYTES, link_middleware

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    async def timed(delay_s: float, loss: float, size: int) -> tuple[float, bytes]:
        app = web.Application(middlewares=[link_middleware(delay_s, loss, seed=1)])
        app.router.add_post("/", echo)
        async with TestClient(TestServer(app)) as client:
            t0 = time.perf_counter()
            resp = await client.post("/", data=bytes(size))
            return time.perf_counter() - t0, await resp.read()

    took, body = await timed(0.05, 0.0, 10)
    assert body == bytes(10) and 0.1 <= took < 0.1 + 0.15  # one delay each way
    took, body = await timed(0.0, 0.01, 200 * SEGMENT_BYTES)  # ~2 of 201 segments lost each way
    assert body == bytes(200 * SEGMENT_BYTES) and took >= 2 * RTO_S
