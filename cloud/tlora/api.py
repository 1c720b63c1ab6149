"""tLoRA's routes (arXiv 2602.07263): the OpenAI-shaped fine-tuning API under ``/v1/fine_tuning/jobs``.

- ``POST /v1/fine_tuning/jobs``: a :class:`FineTuningJobCreate` -> the queued :class:`FineTuningJob`;
- ``GET /v1/fine_tuning/jobs`` (``?after=<job id>&limit=``): newest first;
- ``GET /v1/fine_tuning/jobs/{id}``; ``POST /v1/fine_tuning/jobs/{id}/cancel``;
- ``GET /v1/fine_tuning/jobs/{id}/events`` (``?after=<event id>&limit=``): oldest first, one per
  logged step with its ``train_loss``, plus the job's state changes.

Framework-free, like the rest of the cloud's routes: :mod:`cloud.routes` hands :func:`answer` the
method, path, query string and body of any request under :data:`PREFIX` when ``[cloud.tlora]`` is
set (the aiohttp server, which holds the one job store; Ray Serve replicas do not mount it) and
sends back the model it returns.  Every refusal is an :class:`ApiError` in the one JSON error
shape: 400 naming the field, 404 for an unknown job or path, 405 for a wrong method.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from edgeweave.serving.http_errors import ApiError, from_validation, parse_json
from edgeweave.wire.fine_tuning import FineTuningJobCreate

if TYPE_CHECKING:
    from cloud.tlora.service import FineTuningService

PREFIX = "/v1/fine_tuning/jobs"
_JOB = re.compile(rf"^{re.escape(PREFIX)}/(?P<id>[^/]+)(?P<verb>/cancel|/events)?$")


class Page(BaseModel):
    """A list's query string: ``after`` (the last id of the previous page) and ``limit``."""

    model_config = ConfigDict(extra="forbid")

    after: str | None = None
    limit: int = Field(default=20, ge=1, le=1000)


def owns(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def metric_path(path: str) -> str:
    """``path`` with its job id as ``{id}``: the request counter's label stays one per route."""
    m = _JOB.match(path)
    return f"{PREFIX}/{{id}}{m['verb'] or ''}" if m else path


def _page(query: str) -> Page:
    try:
        return Page.model_validate(dict(parse_qsl(query)))
    except ValidationError as e:
        raise from_validation(e) from None


def _create_request(body: bytes) -> FineTuningJobCreate:
    """The body as a job spec.  ``training_data`` is a union (examples or a household): of its
    members' errors the deepest is the one the client meant (a JSON object: the household's)."""
    obj = parse_json(body, RootModel[dict[str, Any]]).root
    try:
        return FineTuningJobCreate.model_validate(obj)
    except ValidationError as e:
        meant = max(e.errors(), key=lambda err: len(err["loc"]))
        one = ValidationError.from_exception_data(e.title, [meant])  # type: ignore[list-item]
        raise from_validation(one, lambda p: p.replace(".HouseholdData", "")) from None


def _allow(method: str, want: str, path: str) -> None:
    if method != want:
        raise ApiError(405, f"{method} is not allowed on {path}")


async def answer(service: FineTuningService, method: str, path: str, query: str, body: bytes) -> BaseModel:
    """The answer to a request under :data:`PREFIX` (``path`` without a trailing slash)."""
    if path == PREFIX:
        if method == "POST":
            req = _create_request(body)
            return await asyncio.to_thread(service.create, req)  # a large household corpus takes a while
        _allow(method, "GET", path)
        page = _page(query)
        return service.list(page.after, page.limit)
    m = _JOB.match(path)
    if m is None:
        raise ApiError(404, f"no route {method} {path}")
    job_id, verb = m["id"], m["verb"]
    if verb == "/cancel":
        _allow(method, "POST", path)
        return service.cancel(job_id)
    _allow(method, "GET", path)
    if verb == "/events":
        page = _page(query)
        return service.events(job_id, page.after, page.limit)
    return service.retrieve(job_id)
