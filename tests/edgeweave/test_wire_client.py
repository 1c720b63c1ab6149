"""The core's one client over real HTTP: signed requests and checked answers, the API key, and the
one error taxonomy (Unreachable, NotTrusted, Refused with the server's field), async and from threads.

The peer is a small aiohttp server that verifies and signs as a device daemon does
(:mod:`edgeweave.wire.auth`); the daemons themselves are spoken to in tests/device."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
from aiohttp import web
from pydantic import BaseModel

from edgeweave.errors import UsageError
from edgeweave.wire.auth import HEADER_NONCE, HEADER_RESPONSE_SIGNATURE, AuthError, ClusterKey, RequestVerifier
from edgeweave.wire.client import BlockingClient, CallError, NotTrusted, Refused, Unreachable, WireClient

KEY = ClusterKey(b"the-cluster-join-secret-0123456789")
OTHER = ClusterKey(b"some-other-cluster-secret-9876543210")


class Echo(BaseModel):
    said: str
    authorization: str | None = None


def _app(key: ClusterKey) -> web.Application:
    """Verifies the cluster signature when one is sent and signs every answer to a signed request."""
    verifier = RequestVerifier(key)

    @web.middleware
    async def signed(request: web.Request, handler):  # type: ignore[no-untyped-def]
        body = await request.read()
        if HEADER_NONCE in request.headers:
            try:
                verifier.verify(request.method, request.path_qs, request.headers, body, time.time())
            except AuthError as e:
                resp: web.StreamResponse = web.json_response({"error": {"message": e.reason}}, status=e.status)
            else:
                resp = await handler(request)
            assert isinstance(resp, web.Response) and isinstance(resp.body, bytes)
            resp.headers[HEADER_RESPONSE_SIGNATURE] = key.sign_response(
                request.headers[HEADER_NONCE], resp.status, resp.body
            )
            return resp
        return await handler(request)

    async def echo(request: web.Request) -> web.Response:
        said = (await request.json())["said"]
        return web.json_response({"said": said, "authorization": request.headers.get("Authorization")})

    async def refuse(request: web.Request) -> web.Response:
        error = {"message": "plan: 99 is past the 2 plans that meet the QoE", "type": "x", "param": "plan"}
        return web.json_response({"error": error}, status=400, headers={"Retry-After": "3"})

    async def wrong_shape(request: web.Request) -> web.Response:
        return web.json_response({"nothing": "like an Echo"})

    app = web.Application(middlewares=[signed])
    app.router.add_post("/echo", echo)
    app.router.add_post("/refuse", refuse)
    app.router.add_get("/wrong-shape", wrong_shape)
    return app


@pytest.fixture(scope="module")
def peer() -> Iterator[str]:
    """The server on its own event loop in a thread, so blocking calls from the test reach it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(_app(KEY))
    asyncio.run_coroutine_threadsafe(runner.setup(), loop).result()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    asyncio.run_coroutine_threadsafe(site.start(), loop).result()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_signed_calls_succeed_and_every_failure_has_its_kind(peer: str) -> None:
    async with aiohttp.ClientSession() as session:
        signed = WireClient(session, peer, key=KEY)
        assert (await signed.post("/echo", Echo(said="hi"), Echo)).said == "hi"
        with pytest.raises(Refused) as refused:
            await signed.post("/refuse", Echo(said="x"), Echo)
        assert refused.value.status == 400 and refused.value.error.param == "plan"
        assert refused.value.retry_after_s == 3.0
        assert str(refused.value) == f"{peer}/refuse: HTTP 400: plan: 99 is past the 2 plans that meet the QoE"
        with pytest.raises(NotTrusted, match="malformed answer"):
            await signed.get("/wrong-shape", Echo)
        with pytest.raises(NotTrusted, match="not signed with the cluster key"):  # the peer is in another cluster
            await WireClient(session, peer, key=OTHER).post("/echo", Echo(said="hi"), Echo)
        with pytest.raises(NotTrusted, match="not signed with the cluster key"):  # a peer that does not sign
            await WireClient(session, peer, key=KEY).exchange("GET", "/no-such-route")
        with pytest.raises(Unreachable, match="unreachable"):
            await WireClient(session, _closed_port(), key=KEY).post("/echo", Echo(said="hi"), Echo)
        bearer = WireClient(session, peer, api_key="k-123")
        assert (await bearer.post("/echo", Echo(said="hi"), Echo)).authorization == "Bearer k-123"
        assert (await bearer.exchange("POST", "/refuse", b"{}")).status == 400  # a relay gets refusals as they came


def test_a_refusal_is_one_command_line_error_naming_its_field_once() -> None:
    """The server's message already starts with its field: ``plan: plan: 99`` was printed."""
    from edgeweave.wire.protocol import ErrorBody

    e = Refused(400, ErrorBody(message="plan: 99 is past the 2 plans", param="plan"))
    usage = e.usage_error("request")
    assert isinstance(usage, UsageError) and str(usage) == "plan: 99 is past the 2 plans"
    assert str(Refused(400, ErrorBody(message="bad body")).usage_error("request")) == "request: bad body"


def test_the_blocking_facade_serves_threads_side_by_side(peer: str) -> None:
    client = BlockingClient(peer, key=KEY)
    with ThreadPoolExecutor(8) as pool:
        said = list(pool.map(lambda i: client.post("/echo", Echo(said=str(i)), Echo).said, range(32)))
    assert said == [str(i) for i in range(32)]
    with pytest.raises(CallError, match="HTTP 400: plan: 99"):
        client.post("/refuse", Echo(said="x"), Echo)
    with pytest.raises(Unreachable):
        BlockingClient(_closed_port(), key=KEY).call("POST", "/echo", b"{}")


async def test_the_blocking_facade_refuses_to_wait_on_the_loop_it_runs_on(peer: str) -> None:
    with pytest.raises(RuntimeError, match="await WireClient"):
        BlockingClient(peer, key=KEY).call("POST", "/echo", b'{"said": "x"}')
