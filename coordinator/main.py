"""``edgeweave coordinator serve --config FILE``: discovery, registry, front door."""

from __future__ import annotations

import logging

import aiohttp

from coordinator.api import CoordinatorState, create_app
from coordinator.cluster.discovery import Discovery, MdnsDiscovery, StaticDiscovery, UniqueSightings
from coordinator.cluster.placement import POLICIES
from coordinator.cluster.registry import Registry
from coordinator.streaming.dispatch import Dispatcher
from edgeweave.config import EdgeweaveConfig
from edgeweave.serving.api_keys import new_api_key
from edgeweave.serving.service import READY_PREFIX, announce, serve_until_signal
from edgeweave.wire.auth import ClusterKey

log = logging.getLogger("edgeweave.coordinator")


async def serve_coordinator(cfg: EdgeweaveConfig) -> None:
    co = cfg.coordinator
    assert co is not None
    key = ClusterKey(cfg.cluster.secret_bytes())
    api_keys = [k.get_secret_value() for k in co.api_keys]
    generated = co.require_api_key and not api_keys
    if generated:
        api_keys = [new_api_key()]
    async with aiohttp.ClientSession() as session:
        registry = Registry(co, key, session)
        dispatcher = Dispatcher(registry, co.cloud, POLICIES[co.placement](), session)
        state = CoordinatorState(
            api_keys, registry, dispatcher, co.require_api_key, co.disco, co.escalation, co.policy, co.embedder
        )
        app = create_app(state, int(co.max_body_mb * 2**20))
        sources: list[Discovery] = []
        if co.discovery.static:
            sources.append(StaticDiscovery([str(u) for u in co.discovery.static]))
        if co.discovery.mdns:
            sources.append(MdnsDiscovery(co.discovery.interfaces))

        async def ready(url: str) -> None:
            registry.start()
            sink = UniqueSightings(registry)
            for source in sources:
                await source.start(sink)
            # the key goes to stdout once, for the operator; never to the log
            announce(f"{READY_PREFIX} coordinator {url}" + (f" api-key: {api_keys[0]}" if generated else ""))
            log.info("coordinator on %s (%s placement, %d cloud endpoints)", url, co.placement, len(co.cloud))

        async def stop() -> None:
            for source in sources:
                await source.stop()
            await registry.stop()

        await serve_until_signal(app, co.host, co.port, ready, stop)
