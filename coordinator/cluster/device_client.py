"""Signed HTTP calls from the coordinator to one device daemon, on the core's one client
(:class:`edgeweave.wire.client.WireClient` with the cluster key).

Every request is signed with the cluster key and every response's signature is
checked (:mod:`edgeweave.wire.auth`): a peer that cannot sign is
:class:`NotTrusted`, whatever it answers.  The errors are the wire's
(:class:`DeviceError` is :class:`edgeweave.wire.client.CallError`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

import aiohttp
from pydantic import BaseModel

from edgeweave.wire import sse
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.client import NETWORK_ERRORS, NotTrusted, Refused, Unreachable, WireClient, refusal
from edgeweave.wire.client import CallError as DeviceError
from edgeweave.wire.protocol import DoneEvent, ErrorEvent, GenerateRequest, StartEvent, StreamEvent, TokenMessage

__all__ = ["DeviceClient", "DeviceError", "NotTrusted", "Refused", "Unreachable", "refusal"]

M = TypeVar("M", bound=BaseModel)
EVENTS: dict[str, type[StreamEvent]] = {e.event: e for e in (StartEvent, TokenMessage, DoneEvent, ErrorEvent)}


class DeviceClient:
    def __init__(self, session: aiohttp.ClientSession, key: ClusterKey, url: str) -> None:
        self.wire = WireClient(session, url, key=key)
        self.session = session
        self.key = key
        self.url = self.wire.url

    async def get(self, path: str, model: type[M], timeout_s: float) -> M:
        return await self.wire.get(path, model, timeout_s)

    async def post(self, path: str, body: bytes, content_type: str, timeout_s: float) -> tuple[int, bytes]:
        """A signed POST whose answer (any status) is handed back as it came, once its signature checks."""
        answer = await self.wire.exchange("POST", path, body, content_type, timeout_s)
        return answer.status, answer.body

    @asynccontextmanager
    async def generate(
        self, req: GenerateRequest, connect_timeout_s: float = 10.0
    ) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Open the event stream; refusals and trust failures raise before the body is read."""
        async with self.wire.stream("/v1/generate", req, connect_timeout_s) as resp:
            yield self._events(resp)

    async def _events(self, resp: aiohttp.ClientResponse) -> AsyncIterator[StreamEvent]:
        try:
            async for ev in sse.read_events(resp):
                kind = EVENTS.get(ev.event)
                if kind is not None:
                    yield kind.model_validate_json(ev.data)
        except NETWORK_ERRORS as e:
            raise self.wire.stream_broken(e) from None

    async def cancel(self, request_id: str) -> None:
        with suppress(DeviceError):  # the device is gone: nothing left to cancel
            await self.wire.exchange("POST", f"/v1/cancel/{request_id}", timeout_s=5)
