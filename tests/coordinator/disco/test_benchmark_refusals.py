"""The DiSCo benchmark's live client against a real HTTP server that refuses for load: it retries as
the ``openai`` client does (Retry-After honoured, bounded tries) and counts what stayed refused."""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from benchmarks.disco import LiveAnswer, Retry, _one, live_summary


def test_retry_waits_as_the_openai_client_does() -> None:
    r = Retry()
    assert r.delay_s(0, "3") == 3.0 and r.delay_s(5, "0") == 0.0  # the server's Retry-After first
    assert r.delay_s(0, None) == 0.5 and r.delay_s(1, "soon") == 1.0 and r.delay_s(9, None) == 8.0  # else back off
    assert r.delay_s(0, "3600") == 0.5  # longer than the client waits for: its own backoff instead


async def test_refusals_are_retried_then_counted() -> None:
    refuse_first = {"n": 0}

    async def completions(request: web.Request) -> web.StreamResponse:
        if refuse_first["n"] > 0:
            refuse_first["n"] -= 1
            return web.json_response({"error": {"message": "at capacity"}}, status=429, headers={"Retry-After": "0"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Edgeweave-Endpoint": "device:p"})
        await resp.prepare(request)
        for chunk in ({"choices": [{"text": "hi"}]}, {"choices": [], "usage": {"cost_usd": 2e-6}}):
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    results: list[LiveAnswer] = []
    try:
        async with aiohttp.ClientSession() as session:
            for refusals in (0, 2, 3):  # the client tries 3 times in all
                refuse_first["n"] = refusals
                results.append(await _one(session, url, "k", {"model": "m"}, None, Retry()))
    finally:
        await runner.cleanup()
    ok, retried, refused = results
    assert not ok.refused and ok.refusals == 0 and ok.cost_usd == 2e-6 and ok.first_endpoint == "device:p"
    assert not retried.refused and retried.refusals == 2 and retried.ttft_s is not None
    assert refused.refused and refused.refusals == 3
    summary = live_summary(results)
    assert summary["refused_requests"] == 1 and summary["refusals_retried"] == 2 and summary["requests"] == 3
    assert summary["cost_usd"] == 4e-6 and summary["started_on_device"] == 2
