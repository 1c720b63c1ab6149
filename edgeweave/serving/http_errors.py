"""HTTP errors in one JSON shape for every server (device, coordinator, cloud).

The shape is OpenAI's, ``{"error": {"message", "type", "param", "code"}}``, so
clients built for that API show our errors as they show theirs; ``param``
names the offending request field.  :func:`error_middleware` turns
:class:`ApiError`, :class:`~edgeweave.errors.UsageError`, pydantic validation
errors and aiohttp's own HTTP errors (unknown route, body too large, ...) into
that shape; nothing else escapes as HTML or a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from edgeweave.errors import UsageError
from edgeweave.wire.protocol import ErrorBody

log = logging.getLogger(__name__)
Model = TypeVar("Model", bound=BaseModel)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(message=message, type=ERROR_TYPES.get(status, "server_error"), param=param, code=code)
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response({"error": self.body.model_dump()}, status=self.status, headers=self.headers)


def field_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's ``("messages", 0, "role")`` as ``messages[0].role``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _union_tag(part: int | str) -> bool:
    """pydantic names the union member that failed (``str``, ``list[int]``) inside ``loc``."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool", "none") or "[" in part)


def from_validation(e: ValidationError, rename: Callable[[str], str] = lambda p: p) -> ApiError:
    err = e.errors()[0]
    loc = tuple(x for x in err["loc"] if not _union_tag(x))
    param = rename(field_path(loc)) if loc else None
    msg = "not supported by this server" if err["type"] == "extra_forbidden" else err["msg"]
    msg = msg.removeprefix("Value error, ")
    return ApiError(400, f"{param}: {msg}" if param else msg, param=param)


async def parse_body(request: web.Request, model: type[Model], rename: Callable[[str], str] = lambda p: p) -> Model:
    return parse_json(await request.read(), model, rename)


def parse_json(raw: bytes, model: type[Model], rename: Callable[[str], str] = lambda p: p) -> Model:
    """A request body validated into ``model``; any problem is a 400 naming the field."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise from_validation(e, rename) from None


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except UsageError as e:
        return ApiError(400, str(e), param=e.field).response()
    except web.HTTPRequestEntityTooLarge as e:
        return ApiError(413, f"request body too large: {e.text}").response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return ApiError(e.status, e.reason).response()
