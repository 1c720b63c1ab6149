"""The one HTTP client every call between coordinator, devices, cloud and CLIs goes through.

A :class:`WireClient` speaks to one base URL with one credential:

* a :class:`~edgeweave.wire.auth.ClusterKey` (a device daemon): every request is
  HMAC-signed and every answer's signature is checked before its status or body
  is looked at, so a peer that cannot sign is :class:`NotTrusted` whatever it says;
* an API key (the cloud service, a coordinator): ``Authorization: Bearer``;
* nothing (a health probe).

What can go wrong is one taxonomy, the same for every caller:

* :class:`Unreachable`: no answer (refused connection, timeout, a stream cut short);
* :class:`NotTrusted`: the answer is not signed with the cluster key, the peer
  refuses our signature (a signed 401/403), or a 200 body is not what the wire says;
* :class:`Refused`: a well-formed refusal, its status and the server's
  :class:`~edgeweave.wire.protocol.ErrorBody` (``param`` names the field).

All three are :class:`CallError`, an :class:`~edgeweave.errors.EdgeweaveError`: the CLI prints
one line.  Messages start with the URL and path they concern.

:class:`BlockingClient` is the facade for code that runs in threads (Dora's pipeline driver,
Circinus's executor): its calls run on one background event loop with one connection pool
per process, so concurrent threads share keep-alive connections.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from edgeweave.errors import EdgeweaveError, UsageError
from edgeweave.wire.auth import HEADER_NONCE, HEADER_RESPONSE_SIGNATURE, STREAM_BODY, ClusterKey
from edgeweave.wire.protocol import ErrorBody, PrefillRequest, PrefillResult

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
JSON = "application/json"
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)  # no answer, or a stream cut short


class CallError(EdgeweaveError):
    """Base of what can go wrong calling a peer."""


class Unreachable(CallError):
    pass


class NotTrusted(CallError):
    pass


class Refused(CallError):
    """The peer answered a well-formed refusal; ``error`` says why (``param``: the field)."""

    def __init__(self, status: int, error: ErrorBody, retry_after_s: float | None = None, where: str = "") -> None:
        super().__init__(f"{where + ': ' if where else ''}HTTP {status}: {error.message}")
        self.status = status
        self.error = error
        self.retry_after_s = retry_after_s

    def usage_error(self, default_field: str) -> UsageError:
        """The refusal as a command-line error: the field it names and the server's message, whose
        own ``field:`` prefix is not repeated."""
        field = self.error.param or default_field
        return UsageError(field, self.error.message.removeprefix(f"{field}: "))


def refusal(status: int, body: bytes, retry_after: str | None, where: str = "") -> Refused:
    """A non-200 answer in OpenAI's error shape (ours and any OpenAI-compatible server's)."""
    try:
        error = ErrorBody.model_validate(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError, ValidationError):
        error = ErrorBody(message=body[:200].decode(errors="replace") or f"HTTP {status}", type="server_error")
    try:
        retry_after_s = float(retry_after) if retry_after else None
    except ValueError:
        retry_after_s = None
    return Refused(status, error, retry_after_s, where)


def answer(model: type[M], data: object, where: str) -> M:
    """A peer's answer (a decoded body, a frame's metadata) as ``model``; not that shape: :class:`NotTrusted`."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as e:
        raise NotTrusted(f"{where}: malformed answer ({e.error_count()} problems)") from None


@dataclass(frozen=True)
class Answer:
    """An answer as it came (any status), once its signature checked."""

    status: int
    body: bytes
    content_type: str
    retry_after: str | None


class WireClient:
    def __init__(
        self, session: aiohttp.ClientSession, url: str, key: ClusterKey | None = None, api_key: str | None = None
    ) -> None:
        if key is not None and api_key is not None:
            raise ValueError("a peer is spoken to with the cluster key or an API key, not both")
        self.session = session
        self.url = url.rstrip("/")
        self.key = key
        self.api_key = api_key

    def _headers(self, method: str, path: str, body: bytes, content_type: str | None) -> dict[str, str]:
        headers = self.key.sign_request(method, path, body) if self.key is not None else {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    def _verify(self, path: str, sent: dict[str, str], resp: aiohttp.ClientResponse, body: bytes) -> None:
        if self.key is None:
            return
        where = self.url + path
        if not self.key.response_valid(
            sent[HEADER_NONCE], resp.status, body, resp.headers.get(HEADER_RESPONSE_SIGNATURE)
        ):
            raise NotTrusted(f"{where}: the answer is not signed with the cluster key (HTTP {resp.status})")
        if resp.status in (401, 403):
            raise NotTrusted(f"{where}: the peer does not accept our cluster signature (HTTP {resp.status})")

    async def exchange(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = JSON, timeout_s: float = 60.0
    ) -> Answer:
        """One request; the answer, any status, handed back as it came once its signature checks
        (a relay passes refusals on as they are)."""
        headers = self._headers(method, path, body, content_type if body else None)
        try:
            async with self.session.request(
                method, self.url + path, data=body or None, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:  # fmt: skip
                raw = await resp.read()
        except NETWORK_ERRORS as e:
            raise Unreachable(f"{self.url}{path}: unreachable ({type(e).__name__} {e})") from None
        self._verify(path, headers, resp, raw)
        return Answer(resp.status, raw, resp.headers.get("Content-Type", ""), resp.headers.get("Retry-After"))

    async def call(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = JSON, timeout_s: float = 60.0
    ) -> bytes:
        """The body of a 200 answer; anything else is :class:`Refused`."""
        answer = await self.exchange(method, path, body, content_type, timeout_s)
        if answer.status != 200:
            raise refusal(answer.status, answer.body, answer.retry_after, self.url + path)
        return answer.body

    async def get(self, path: str, model: type[M], timeout_s: float = 60.0) -> M:
        return answer(model, await self.call("GET", path, timeout_s=timeout_s), self.url + path)

    async def post(self, path: str, request: BaseModel, model: type[M], timeout_s: float = 60.0) -> M:
        body = request.model_dump_json(exclude_none=True).encode()
        return answer(model, await self.call("POST", path, body, JSON, timeout_s), self.url + path)

    async def prefill(self, req: PrefillRequest, path: str = "/v1/prefill", timeout_s: float = 120.0) -> PrefillResult:
        """Warm the peer's prompt cache with a context (a device daemon, or an edgeweave cloud server
        at ``path`` under its base URL); nothing is generated."""
        return await self.post(path, req, PrefillResult, timeout_s)

    @asynccontextmanager
    async def stream(
        self, path: str, request: BaseModel, connect_timeout_s: float = 10.0
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a streamed POST (server-sent events); refusals and trust failures raise before the
        body is read, a stream cut short is :class:`Unreachable` (:func:`stream_broken`)."""
        body = request.model_dump_json(exclude_none=True).encode()
        headers = self._headers("POST", path, body, JSON)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s)
        try:
            resp = await self.session.post(self.url + path, data=body, headers=headers, timeout=timeout)
        except NETWORK_ERRORS as e:
            raise Unreachable(f"{self.url}{path}: unreachable ({type(e).__name__} {e})") from None
        async with resp:
            if resp.status != 200:
                try:
                    raw = await resp.read()
                except NETWORK_ERRORS as e:
                    raise Unreachable(f"{self.url}{path}: unreachable ({type(e).__name__} {e})") from None
                self._verify(path, headers, resp, raw)
                raise refusal(resp.status, raw, resp.headers.get("Retry-After"), self.url + path)
            self._verify(path, headers, resp, STREAM_BODY)
            yield resp

    def stream_broken(self, e: BaseException) -> Unreachable:
        return Unreachable(f"{self.url}: stream broken ({type(e).__name__})")


class _Background:
    """One event loop in a daemon thread, with one connection pool, for :class:`BlockingClient`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="edgeweave-wire", daemon=True)
        self.thread.start()
        self.session = self.run(self._open())
        atexit.register(self.close)

    @staticmethod
    async def _open() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()  # type: ignore[arg-type]

    def close(self) -> None:
        self.run(self.session.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


_background: _Background | None = None
_background_lock = threading.Lock()


def _shared() -> _Background:
    global _background
    with _background_lock:
        if _background is None:
            _background = _Background()
        return _background


class BlockingClient:
    """:class:`WireClient`'s calls for code in threads (never on an event loop's own thread: it would
    wait on itself)."""

    def __init__(self, url: str, key: ClusterKey | None = None, api_key: str | None = None) -> None:
        self.url, self.key, self.api_key = url.rstrip("/"), key, api_key

    def run(self, fn: Callable[[WireClient], Awaitable[T]]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            shared = _shared()
            return shared.run(fn(WireClient(shared.session, self.url, self.key, self.api_key)))
        raise RuntimeError("BlockingClient called on an event loop: await WireClient instead")

    def exchange(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = JSON, timeout_s: float = 60.0
    ) -> Answer:
        return self.run(lambda c: c.exchange(method, path, body, content_type, timeout_s))

    def call(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = JSON, timeout_s: float = 60.0
    ) -> bytes:
        return self.run(lambda c: c.call(method, path, body, content_type, timeout_s))

    def get(self, path: str, model: type[M], timeout_s: float = 60.0) -> M:
        return self.run(lambda c: c.get(path, model, timeout_s))

    def post(self, path: str, request: BaseModel, model: type[M], timeout_s: float = 60.0) -> M:
        return self.run(lambda c: c.post(path, request, model, timeout_s))

    def prefill(self, req: PrefillRequest, path: str = "/v1/prefill", timeout_s: float = 120.0) -> PrefillResult:
        return self.run(lambda c: c.prefill(req, path, timeout_s))
