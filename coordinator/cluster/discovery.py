"""How the coordinator learns of device daemons: an interface and two sources.

:class:`MdnsDiscovery` browses ``_edgeweave._tcp.local.`` with zeroconf's
asyncio API; :class:`StaticDiscovery` reports the device URLs listed in the
config (networks without multicast).  Both only report sightings; whether a
sighted daemon is trusted and used is the registry's decision.

:class:`UniqueSightings` stands between the sources and the registry: a daemon
advertised by mDNS and also listed statically is seen at one URL under two
names; only the first name reaches the registry (the other would be
re-checked, and warned about, on every heartbeat), and the second takes over
if the first is lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal, Protocol

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edgeweave.wire.mdns import SERVICE_TYPE, open_zeroconf

log = logging.getLogger("edgeweave.discovery")
RESOLVE_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class Sighting:
    name: str  # stable key: the mDNS service name, or the static URL
    url: str
    source: Literal["mdns", "static"]
    device_id: str | None = None
    fingerprint: str | None = None


class DiscoverySink(Protocol):
    def found(self, sighting: Sighting) -> None: ...

    def lost(self, name: str) -> None: ...


class Discovery(Protocol):
    async def start(self, sink: DiscoverySink) -> None: ...

    async def stop(self) -> None: ...


class UniqueSightings:
    """A :class:`DiscoverySink` that forwards one sighting per URL to ``sink``."""

    def __init__(self, sink: DiscoverySink) -> None:
        self.sink = sink
        self._sightings: dict[str, Sighting] = {}  # name -> its latest sighting, forwarded or not
        self._forwarded: dict[str, str] = {}  # url -> the name the sink knows it by

    def found(self, sighting: Sighting) -> None:
        previous = self._sightings.get(sighting.name)
        self._sightings[sighting.name] = sighting
        was_forwarded = previous is not None and self._forwarded.get(previous.url) == sighting.name
        if previous is not None and previous.url != sighting.url:
            self._release(previous)
        owner = self._forwarded.setdefault(sighting.url, sighting.name)
        if owner == sighting.name:
            self.sink.found(sighting)  # a move included: the sink re-keys the name itself
        elif was_forwarded:
            self.sink.lost(sighting.name)  # it moved to a URL the sink knows by another name

    def lost(self, name: str) -> None:
        sighting = self._sightings.pop(name, None)
        if sighting is None or self._forwarded.get(sighting.url) != name:
            return
        self.sink.lost(name)
        self._release(sighting)

    def _release(self, sighting: Sighting) -> None:
        """``sighting``'s name no longer holds its URL: another name seen there takes it over."""
        if self._forwarded.get(sighting.url) != sighting.name:
            return
        del self._forwarded[sighting.url]
        heir = next((s for s in self._sightings.values() if s.url == sighting.url), None)
        if heir is not None:
            self._forwarded[heir.url] = heir.name
            self.sink.found(heir)


class StaticDiscovery:
    def __init__(self, urls: list[str]) -> None:
        self.urls = [u.rstrip("/") for u in urls]

    async def start(self, sink: DiscoverySink) -> None:
        for url in self.urls:
            sink.found(Sighting(name=url, url=url, source="static"))

    async def stop(self) -> None:
        pass


class MdnsDiscovery:
    def __init__(self, interfaces: list[str]) -> None:
        self.interfaces = interfaces
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, sink: DiscoverySink) -> None:
        self._zc = open_zeroconf(self.interfaces)
        loop = asyncio.get_running_loop()

        def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
            if state_change is ServiceStateChange.Removed:
                sink.lost(name)
                return
            task = loop.create_task(self._resolve(zeroconf, service_type, name, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[on_change])

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str, sink: DiscoverySink) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS):
            log.warning("mDNS: could not resolve %s", name)
            return
        addresses = info.parsed_addresses(IPVersion.V4Only)
        if not addresses or not info.port:
            log.warning("mDNS: %s announced no IPv4 address or port", name)
            return
        txt = info.decoded_properties
        sink.found(
            Sighting(
                name=name,
                url=f"http://{addresses[0]}:{info.port}",
                source="mdns",
                device_id=txt.get("id"),
                fingerprint=txt.get("fp"),
            )
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            await self._zc.async_close()
