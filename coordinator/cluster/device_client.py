"""Signed HTTP calls from the coordinator to one device daemon.

Every request is signed with the cluster key and every response's signature is
checked (:mod:`edgeweave.wire.auth`): a peer that cannot sign is
:class:`NotTrusted`, whatever it answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from edgeweave.wire import sse
from edgeweave.wire.auth import HEADER_NONCE, HEADER_RESPONSE_SIGNATURE, STREAM_BODY, ClusterKey
from edgeweave.wire.protocol import (
    DoneEvent,
    ErrorBody,
    ErrorEvent,
    GenerateRequest,
    StartEvent,
    StreamEvent,
    TokenMessage,
)

M = TypeVar("M", bound=BaseModel)
EVENTS: dict[str, type[StreamEvent]] = {e.event: e for e in (StartEvent, TokenMessage, DoneEvent, ErrorEvent)}


class DeviceError(Exception):
    """Base of what can go wrong talking to a device."""


class Unreachable(DeviceError):
    pass


class NotTrusted(DeviceError):
    pass


class Refused(DeviceError):
    """The device answered a well-formed refusal (4xx); ``error`` says why."""

    def __init__(self, status: int, error: ErrorBody, retry_after_s: float | None = None) -> None:
        super().__init__(f"{status}: {error.message}")
        self.status = status
        self.error = error
        self.retry_after_s = retry_after_s


class DeviceClient:
    def __init__(self, session: aiohttp.ClientSession, key: ClusterKey, url: str) -> None:
        self.session = session
        self.key = key
        self.url = url.rstrip("/")

    async def get(self, path: str, model: type[M], timeout_s: float) -> M:
        headers = self.key.sign_request("GET", path)
        try:
            async with self.session.get(
                self.url + path, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                body = await resp.read()
                self._check_signature(resp, headers, body)
                if resp.status != 200:
                    raise refusal(resp.status, body, resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Unreachable(f"{self.url}{path}: {type(e).__name__} {e}") from None
        try:
            return model.model_validate_json(body)
        except ValidationError as e:
            raise NotTrusted(f"{self.url}{path}: malformed answer ({e.error_count()} problems)") from None

    async def post(self, path: str, body: bytes, content_type: str, timeout_s: float) -> tuple[int, bytes]:
        """A signed POST whose answer (any status) is handed back as it came, once its signature checks."""
        headers = {**self.key.sign_request("POST", path, body), "Content-Type": content_type}
        try:
            async with self.session.post(
                self.url + path, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                raw = await resp.read()
                self._check_signature(resp, headers, raw)
                return resp.status, raw
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Unreachable(f"{self.url}{path}: {type(e).__name__} {e}") from None

    @asynccontextmanager
    async def generate(
        self, req: GenerateRequest, connect_timeout_s: float = 10.0
    ) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Open the event stream; refusals and trust failures raise before the body is read."""
        body = req.model_dump_json(exclude_none=True).encode()
        headers = {**self.key.sign_request("POST", "/v1/generate", body), "Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s)
        try:
            resp = await self.session.post(self.url + "/v1/generate", data=body, headers=headers, timeout=timeout)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Unreachable(f"{self.url}/v1/generate: {type(e).__name__} {e}") from None
        async with resp:
            if resp.status != 200:
                raw = await resp.read()
                self._check_signature(resp, headers, raw)
                raise refusal(resp.status, raw, resp.headers.get("Retry-After"))
            self._check_signature(resp, headers, STREAM_BODY)
            yield self._events(resp)

    async def _events(self, resp: aiohttp.ClientResponse) -> AsyncIterator[StreamEvent]:
        try:
            async for ev in sse.read_events(resp):
                kind = EVENTS.get(ev.event)
                if kind is not None:
                    yield kind.model_validate_json(ev.data)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Unreachable(f"{self.url}: stream broken ({type(e).__name__})") from None

    async def cancel(self, request_id: str) -> None:
        path = f"/v1/cancel/{request_id}"
        headers = self.key.sign_request("POST", path)
        try:
            async with self.session.post(self.url + path, headers=headers, timeout=aiohttp.ClientTimeout(total=5)):
                pass
        except (aiohttp.ClientError, TimeoutError, OSError):
            pass  # the device is gone: nothing left to cancel

    def _check_signature(self, resp: aiohttp.ClientResponse, sent: dict[str, str], body: bytes) -> None:
        if not self.key.response_valid(
            sent[HEADER_NONCE], resp.status, body, resp.headers.get(HEADER_RESPONSE_SIGNATURE)
        ):
            raise NotTrusted(f"{self.url} answered without a valid cluster signature (HTTP {resp.status})")
        if resp.status in (401, 403):
            raise NotTrusted(f"{self.url} does not accept our cluster signature (HTTP {resp.status})")


def refusal(status: int, body: bytes, retry_after: str | None) -> Refused:
    """A non-200 answer in OpenAI's error shape (ours and any OpenAI-compatible server's)."""
    try:
        error = ErrorBody.model_validate(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError, ValidationError):
        error = ErrorBody(message=body[:200].decode(errors="replace") or f"HTTP {status}", type="server_error")
    return Refused(status, error, float(retry_after) if retry_after else None)
