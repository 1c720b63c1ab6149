"""Running a server process: bind, announce readiness, stop on SIGINT/SIGTERM.

Every edgeweave server (device daemon, coordinator, cloud engine) prints one
readiness line on stdout once it accepts connections (with the real port when
the config asked for port 0), then runs until a signal, then shuts down in
order: the caller's ``on_stop`` hook (e.g. mDNS unregistration) first, then
the HTTP server.  A socket that cannot be bound (port taken, no such local
address) is a user's config problem: :class:`ListenError`, one line, not a
traceback.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web

from edgeweave.errors import UsageError

READY_PREFIX = "edgeweave-ready"


class ListenError(UsageError):
    """The server cannot listen on ``host:port``; ``field`` is ``port`` or ``host``, the config
    field to change (the CLI prefixes the role's section, e.g. ``device.port``)."""

    def __init__(self, host: str, port: int, e: OSError) -> None:
        port_problem = e.errno in (errno.EADDRINUSE, errno.EACCES)
        # asyncio words its bind errors at length; the errno's own text is the one-line reason
        why = os.strerror(e.errno).lower() if isinstance(e.errno, int) and e.errno > 0 else str(e)
        super().__init__("port" if port_problem else "host", f"cannot listen on {host}:{port}: {why}")
        self.host = host
        self.port = port


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve_until_signal(
    app: web.Application,
    host: str,
    port: int,
    on_ready: Callable[[str], Awaitable[None]],
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """``on_ready`` gets the base URL once the socket listens."""
    stop = stop_on_signal()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as e:  # socket.gaierror (an unknown host name) included
            raise ListenError(host, port, e) from None
        bound_port = runner.addresses[0][1]
        await on_ready(f"http://{host}:{bound_port}")
        await stop.wait()
        if on_stop is not None:
            await on_stop()
    finally:
        await runner.cleanup()


def stop_on_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def announce(line: str) -> None:
    """The readiness line parents wait for (see :mod:`edgeweave.cluster.processes`)."""
    print(line, flush=True)
