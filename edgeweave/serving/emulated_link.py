"""The emulated network link a server can run behind (Dora's and Circinus's emulated LAN).

``netem`` does not work on these machines, so propagation delay and loss are emulated in the
transport layer: a server spawned with ``EDGEWEAVE_EMULATED_LINK="DELAY_MS,LOSS"`` holds each
request ``delay_ms`` before handling it and each answer ``delay_ms`` before sending it, and drops
each 1448-byte segment of either with probability ``loss``, every lost segment costing one
retransmission timeout (``RTO_S``, Linux's minimum: the case where fast retransmit does not save
it).  Device daemons and the cloud service splice :func:`link_from_env` in; the namespaces, bridges
and CPU quotas around them are :mod:`coordinator.dora.emulation`.
"""

from __future__ import annotations

import asyncio
import os
import random

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

LINK_ENV = "EDGEWEAVE_EMULATED_LINK"  # "DELAY_MS,LOSS", set by Lan.spawn
SEGMENT_BYTES = 1448  # TCP payload per packet on a 1500-byte MTU
RTO_S = 0.2


def link_middleware(delay_s: float, loss: float, seed: int = 0) -> Middleware:
    """An aiohttp middleware adding one leg of propagation delay to each request and to each answer,
    and a retransmission timeout per lost segment."""
    rng = random.Random(seed)

    def held(size: int) -> float:
        segments = size // SEGMENT_BYTES + 1
        return delay_s + RTO_S * sum(rng.random() < loss for _ in range(segments))

    @web.middleware
    async def link(request: web.Request, handler: Handler) -> web.StreamResponse:
        await asyncio.sleep(held(len(await request.read())))
        response = await handler(request)
        body = getattr(response, "body", None)
        await asyncio.sleep(held(len(body) if isinstance(body, bytes | bytearray) else 0))
        return response

    return link


def link_from_env() -> list[Middleware]:
    """The emulated link this process was spawned behind, as its server's outermost middleware (none
    without one)."""
    raw = os.environ.get(LINK_ENV)
    if not raw:
        return []
    delay_ms, loss = (float(x) for x in raw.split(","))
    return [link_middleware(delay_ms / 1000, loss)]
