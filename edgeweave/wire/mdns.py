"""mDNS facts shared by advertisers (devices) and browsers (the coordinator)."""

from __future__ import annotations

from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncZeroconf

SERVICE_TYPE = "_edgeweave._tcp.local."


def open_zeroconf(interfaces: list[str]) -> AsyncZeroconf:
    """IPv4 zeroconf on the given interface addresses (``["all"]``: every interface).
    Tests and the demo use ``["127.0.0.1"]`` so they run without a LAN."""
    choice = InterfaceChoice.All if interfaces == ["all"] else interfaces
    return AsyncZeroconf(interfaces=choice, ip_version=IPVersion.V4Only)
