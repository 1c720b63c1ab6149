"""Client API keys (``Authorization: Bearer <key>``) for the OpenAI-compatible
front doors (coordinator and cloud server); ``/health`` and ``/metrics`` stay open."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from edgeweave.serving.http_errors import ApiError

OPEN_PATHS = ("/health", "/metrics")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def new_api_key() -> str:
    return "ew-" + secrets.token_urlsafe(24)


def check_api_key(keys: list[str] | None, path: str, authorization: str) -> None:
    """Raise 401 unless ``path`` is open, no keys are required, or the header carries one of ``keys``."""
    if keys is None or path in OPEN_PATHS:
        return
    given = authorization.removeprefix("Bearer ").strip().encode()
    if not authorization.startswith("Bearer ") or not any(hmac.compare_digest(given, k.encode()) for k in keys):
        raise ApiError(401, "missing or invalid API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")


def api_key_middleware(keys: list[str] | None) -> Middleware:
    """Require one of ``keys`` on every other path (``None``: no keys required)."""

    @web.middleware
    async def api_key_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        check_api_key(keys, request.path, request.headers.get("Authorization", ""))
        return await handler(request)

    return api_key_auth
