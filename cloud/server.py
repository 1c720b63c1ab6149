"""The cloud engine behind an OpenAI-compatible API in one aiohttp process (``edgeweave cloud
serve`` without ``[cloud.ray]``; with it, :mod:`cloud.ray_serve`).

The routes are :mod:`cloud.routes` (framework-free); this module mounts them on aiohttp behind
the emulated-link middleware (when spawned behind one) and the shared error shape (for what
aiohttp itself refuses: a body over ``max_body_mb``).  The coordinator registers it as a cloud
endpoint like any OpenAI-compatible URL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from cloud.routes import HttpRequest, HttpResponse, handle
from cloud.service import CloudState, load_state
from edgeweave.config import CloudServerConfig
from edgeweave.serving.emulated_link import link_from_env
from edgeweave.serving.http_errors import error_middleware
from edgeweave.serving.service import READY_PREFIX, announce, serve_until_signal

log = logging.getLogger("edgeweave.cloud")
KEY = web.AppKey("cloud", CloudState)


async def _stream(request: web.Request, resp: HttpResponse, body: AsyncIterator[bytes]) -> web.StreamResponse:
    out = web.StreamResponse(status=resp.status, headers=resp.headers)
    try:
        await out.prepare(request)
        async for chunk in body:
            await out.write(chunk)
        await out.write_eof()
    except ConnectionResetError:
        log.info("client left a stream: aborting it on the engine")
    finally:
        await body.aclose()  # type: ignore[attr-defined]
    return out


def create_app(state: CloudState, api_keys: list[str] | None, max_body_bytes: int) -> web.Application:
    """``api_keys=None``: no key required."""
    app = web.Application(middlewares=[*link_from_env(), error_middleware], client_max_size=max_body_bytes)
    app[KEY] = state

    async def serve(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        req = HttpRequest(request.method, request.path, auth, await request.read(), request.query_string)
        resp = await handle(state, api_keys, req)
        if isinstance(resp.body, bytes):
            headers = {**resp.headers, "Content-Type": resp.content_type}
            return web.Response(body=resp.body, status=resp.status, headers=headers)
        return await _stream(request, resp, resp.body)

    app.router.add_route("*", "/{path:.*}", serve)
    return app


def build(cfg: CloudServerConfig, api_keys: list[str] | None) -> tuple[web.Application, CloudState]:
    state = load_state(cfg)
    if cfg.tlora is not None:
        from cloud.tlora.service import FineTuningService, scheduler_for

        sched = scheduler_for(cfg.tlora, cfg.model)
        serve = state.engine.engine.add_adapter
        adapters = [a.name for a in cfg.adapters]
        state.tlora = FineTuningService(cfg.tlora, cfg.model, cfg.name, sched, serve, adapters)
    return create_app(state, api_keys, int(cfg.max_body_mb * 2**20)), state


async def serve(c: CloudServerConfig, api_keys: list[str] | None, key_note: str) -> None:
    """Serve until SIGINT/SIGTERM (``api_keys=None``: no key required)."""
    app, state = build(c, api_keys)
    engine = state.engine
    e = engine.engine

    async def ready(url: str) -> None:
        engine.start()
        if state.tlora is not None:
            state.tlora.start()
        announce(f"{READY_PREFIX} cloud {url}{key_note}")
        log.info(
            "cloud engine %s on %s: %s attention, %d KV blocks of %d tokens, device %s",
            c.name, url, e.runner.attention.name, e.blocks.num_blocks, e.blocks.block_size, e.device,
        )  # fmt: skip

    async def stop() -> None:
        if state.tlora is not None:
            state.tlora.close()
        if state.sound is not None:
            state.sound.close()
        engine.stop()

    await serve_until_signal(app, c.host, c.port, ready, stop)
