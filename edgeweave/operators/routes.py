"""Circinus's operator route, served by device daemons and the cloud service alike:
``POST /v1/circinus/run`` runs one operator (:mod:`edgeweave.operators.runtime`) on this tier.

The body is one tensor frame (:mod:`edgeweave.wire.tensor_frames`): the input
frames ``[B, 3, 64, 64]`` for a vision operator (an empty tensor for an LLM),
its metadata an :class:`~edgeweave.wire.circinus.OperatorCall` (the model and,
for an LLM, the prompt).  The answer is one tensor frame: the logits (an empty
tensor for an LLM), its metadata an :class:`~edgeweave.wire.circinus.OperatorAnswer`
(compute seconds and, for an LLM, the text).  Operators are loaded on first
use and kept; each runs one call at a time, off the event loop.  An unknown
model, a malformed body or a missing prompt is a 400 naming the field.

The route registers without torch (a llama.cpp-only device never loads it): the operator
runtime and tensor frames are imported by the first call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from edgeweave.errors import EdgeweaveError
from edgeweave.serving.http_errors import ApiError, from_validation
from edgeweave.wire.circinus import RUN_PATH, OperatorAnswer, OperatorCall

if TYPE_CHECKING:
    from edgeweave.operators.runtime import LLMOp, VisionOp


@dataclass
class _Loaded:
    op: VisionOp | LLMOp
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OperatorService:
    """The route's work without a web framework: a request body in, a response body out (the
    aiohttp route below and the cloud's framework-free route table both call :meth:`run`)."""

    def __init__(self) -> None:
        self._loaded: dict[str, _Loaded] = {}

    async def _operator(self, model: str) -> _Loaded:
        from edgeweave.operators.runtime import load_operator

        if model not in self._loaded:
            try:
                self._loaded[model] = _Loaded(await asyncio.to_thread(load_operator, model))
            except EdgeweaveError as e:
                raise ApiError(400, f"model: {e}", param="model") from None
        return self._loaded[model]

    async def run(self, body: bytes) -> bytes:
        import torch

        from edgeweave.operators.runtime import LLMOp
        from edgeweave.wire.tensor_frames import FrameError, decode, encode, pack, unpack

        try:
            frames = [decode(f) for f in unpack(body)]
        except FrameError as e:
            raise ApiError(400, f"body: {e}", param="body") from None
        if len(frames) != 1:
            raise ApiError(400, f"body: expected one tensor frame, got {len(frames)}", param="body")
        x, meta = frames[0]
        if not meta.get("model"):
            raise ApiError(400, "model: the frame's meta must name the operator's model", param="model")
        try:
            call = OperatorCall.model_validate(meta)
        except ValidationError as e:
            raise from_validation(e) from None
        loaded = await self._operator(call.model)
        op = loaded.op
        text: str | None = None
        async with loaded.lock:
            t0 = time.perf_counter()
            if isinstance(op, LLMOp):
                prompt = call.prompt
                if not prompt:
                    raise ApiError(400, "prompt: an LLM operator needs a non-empty prompt", param="prompt")
                text = await asyncio.to_thread(op, prompt)
                result = torch.empty(0)
            else:
                if x.dim() != 4 or x.shape[1] != 3:
                    raise ApiError(400, f"body: expected frames [B, 3, H, W], got {list(x.shape)}", param="body")
                result = torch.from_numpy(await asyncio.to_thread(op, x.float().numpy()))
            answer = OperatorAnswer(seconds=time.perf_counter() - t0, text=text)
        return pack([encode(result, answer.model_dump(exclude_none=True))])


OPERATORS = web.AppKey("circinus_operators", OperatorService)


async def run(request: web.Request) -> web.Response:
    body = await request.app[OPERATORS].run(await request.read())
    from edgeweave.wire.tensor_frames import CONTENT_TYPE  # loaded by the call: torch is in by now

    return web.Response(body=body, content_type=CONTENT_TYPE)


def add_routes(app: web.Application) -> None:
    app[OPERATORS] = OperatorService()
    app.router.add_post(RUN_PATH, run)
