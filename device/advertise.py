"""mDNS advertisement of a device daemon (zeroconf, ``_edgeweave._tcp.local.``).

The TXT record carries id, kind, version, port and the cluster key
fingerprint; never the secret.  The instance and host names carry the
fingerprint's first 8 hex digits, so that two clusters on one network (two
homes, or two test runs on one machine) can each have a ``phone-1``: mDNS
refuses a second registration of the same name.  The service is unregistered
on shutdown so coordinators drop the device at once rather than after the
record's TTL.
"""

from __future__ import annotations

import socket

import psutil
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

import edgeweave
from edgeweave.wire.mdns import SERVICE_TYPE, open_zeroconf


def _ipv4_addresses(host: str) -> list[str]:
    if host not in ("0.0.0.0", ""):
        return [host]
    return [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]


class Advertiser:
    def __init__(
        self, device_id: str, kind: str, host: str, port: int, fingerprint: str, interfaces: list[str]
    ) -> None:
        instance = f"{device_id}-{fingerprint[:8]}"
        self.info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{instance}.{SERVICE_TYPE}",
            parsed_addresses=_ipv4_addresses(host),
            port=port,
            properties={
                "id": device_id,
                "kind": kind,
                "version": edgeweave.__version__,
                "port": str(port),
                "fp": fingerprint,
            },
            server=f"{instance}.local.",
        )
        self._interfaces = interfaces
        self._zc: AsyncZeroconf | None = None

    async def start(self) -> None:
        self._zc = open_zeroconf(self._interfaces)
        await self._zc.async_register_service(self.info)

    async def stop(self) -> None:
        if self._zc is not None:
            await self._zc.async_unregister_service(self.info)
            await self._zc.async_close()
            self._zc = None
