"""The device daemon's Dora routes: pipeline stages served over the network in tensor frames,
and per-layer profiling on the device itself.

``POST /v1/dora/profile`` times every layer of a model on this device
(forward and backward, per sample) and reports the bytes at each cut and each
layer's weights: the profile Dora's partitioner plans from; ``POST
/v1/dora/echo`` sends the body back (link probes).
``POST /v1/dora/stages`` loads a layer range as stage ``id`` (``lr`` > 0: for
training); then, per stage, bodies and answers are tensor frames
(:mod:`edgeweave.wire.tensor_frames`):

- ``/infer``: hidden states (or token ids) in, the next stage's input out;
- ``/forward``: the same in training (meta ``key``: the micro-batch), kept for backward;
- ``/loss`` (last stage): frames [input, targets] (meta ``key``, ``total``), answer
  [loss share, gradient for the previous stage];
- ``/backward``: the next stage's gradient (meta ``key``), answer [gradient] or [];
- ``GET``/``POST /gradients``: the stage's gradients, one frame per parameter (meta ``name``);
- ``/step``: the optimizer step; ``DELETE``: unload.

Every JSON body and every frame's metadata is a model of :mod:`edgeweave.wire.dora`, validated
here as the coordinator builds it there (a bad field is a 400 naming it).  Compute runs off the
event loop, one call at a time per stage.

This module registers the routes without torch (a llama.cpp-only device never loads it): the
stage runtime (:mod:`device.dora.stage`), the profiler and tensor frames are imported by the
first request that needs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from edgeweave.errors import EdgeweaveError, ModelFileError, UsageError
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.serving.http_errors import ApiError, from_validation, parse_body
from edgeweave.wire.dora import (
    Ack,
    FrameMeta,
    Gradient,
    LayerProfile,
    LoadedStage,
    LoadStage,
    LossShare,
    MicroBatch,
    ProfileRequest,
    StageInfo,
    StageList,
    Unloaded,
)

if TYPE_CHECKING:
    import torch

    from device.dora.stage import StageWorker

T = TypeVar("T")
Meta = TypeVar("Meta", bound=FrameMeta)


@dataclass
class _Served:
    worker: StageWorker
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


STAGES = web.AppKey("dora_stages", dict)
THREADS = web.AppKey("dora_torch_threads", int)  # 0: torch's default


def _checkpoint(model: str) -> Any:
    try:
        return resolve_checkpoint(model)
    except ModelFileError as e:
        raise ApiError(400, f"model: {e}", param="model") from None


def _json(body: LoadedStage | StageList | Unloaded | Ack | LayerProfile) -> web.Response:
    return web.Response(text=body.model_dump_json(), content_type="application/json")


def _torch_threads(app: web.Application) -> None:
    """Torch's thread count, set on the event loop before a stage or a profile first computes (the
    device's own count: torch's default, every core, would burn a CPU quota spinning)."""
    import torch

    if app[THREADS]:
        torch.set_num_threads(app[THREADS])


async def load_stage(request: web.Request) -> web.Response:
    from device.dora.stage import ModelStage, StageWorker

    req = await parse_body(request, LoadStage)
    path = _checkpoint(req.model)
    _torch_threads(request.app)
    try:
        stage = await asyncio.to_thread(ModelStage.load, path, req.start, req.end)
    except UsageError as e:
        raise ApiError(400, str(e), param="end") from None
    request.app[STAGES][req.id] = _Served(StageWorker(stage, req.lr))
    params = sum(p.numel() for p in stage.parameters())
    return _json(LoadedStage(id=req.id, parameters=params, first=stage.first, last=stage.last))


async def list_stages(request: web.Request) -> web.Response:
    stages = request.app[STAGES]
    return _json(
        StageList(
            data=[
                StageInfo(id=sid, layers=(s.worker.stage.start, s.worker.stage.end))
                for sid, s in sorted(stages.items())
            ]
        )
    )


async def drop_stage(request: web.Request) -> web.Response:
    _served(request)
    del request.app[STAGES][request.match_info["id"]]
    return _json(Unloaded(id=request.match_info["id"]))


def _served(request: web.Request) -> _Served:
    sid = request.match_info["id"]
    served = request.app[STAGES].get(sid)
    if served is None:
        raise ApiError(404, f"no stage {sid!r} is loaded here", param="id")
    return served


async def _frames(request: web.Request, n: int | None = 1) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    """The body's frames (``n`` of them, unless None)."""
    from edgeweave.wire.tensor_frames import FrameError, decode, unpack

    try:
        frames = [decode(f) for f in unpack(await request.read())]
    except FrameError as e:
        raise ApiError(400, f"body: {e}", param="body") from None
    if n is not None and len(frames) != n:
        raise ApiError(400, f"body: expected {n} tensor frame(s), got {len(frames)}", param="body")
    return frames


def _meta(meta: dict[str, Any], model: type[Meta]) -> Meta:
    try:
        return model.model_validate(meta)
    except ValidationError as e:
        raise from_validation(e) from None


async def _run(served: _Served, fn: Callable[[], T]) -> T:
    async with served.lock:
        try:
            return await asyncio.to_thread(fn)
        except KeyError as e:
            raise ApiError(400, f"key: no forward pass is waiting for micro-batch {e}", param="key") from None
        except (RuntimeError, IndexError, ValueError) as e:  # shapes or ids that do not fit the stage
            raise ApiError(400, f"body: the stage cannot take this tensor ({e})", param="body") from None
        except EdgeweaveError as e:
            raise ApiError(400, str(e)) from None


def _reply(tensors: Sequence[torch.Tensor | float], metas: Sequence[FrameMeta] | None = None) -> web.Response:
    """One frame per tensor (a float: a 0-d tensor), with ``metas`` (one per tensor) if given."""
    import torch

    from edgeweave.wire.tensor_frames import CONTENT_TYPE, encode, pack

    dumped = [m.model_dump() for m in metas] if metas is not None else [None] * len(tensors)
    frames = [
        encode(torch.tensor(t) if isinstance(t, float) else t, meta) for t, meta in zip(tensors, dumped, strict=True)
    ]
    return web.Response(body=pack(frames), content_type=CONTENT_TYPE)


async def infer(request: web.Request) -> web.Response:
    served, ((x, _),) = _served(request), await _frames(request)
    out = await _run(served, lambda: served.worker.infer(x))
    return _reply([out])


async def forward(request: web.Request) -> web.Response:
    served, ((x, meta),) = _served(request), await _frames(request)
    mb = _meta(meta, MicroBatch)
    out = await _run(served, lambda: served.worker.forward(mb.key, x))
    return _reply([out])


async def loss(request: web.Request) -> web.Response:
    served, ((x, meta), (targets, _)) = _served(request), await _frames(request, 2)
    mb = _meta(meta, LossShare)
    share, grad = await _run(served, lambda: served.worker.loss(mb.key, x, targets, mb.total))
    return _reply([share] + ([grad] if grad is not None else []))


async def backward(request: web.Request) -> web.Response:
    served, ((grad, meta),) = _served(request), await _frames(request)
    mb = _meta(meta, MicroBatch)
    out = await _run(served, lambda: served.worker.backward(mb.key, grad))
    return _reply([out] if out is not None else [])


async def get_gradients(request: web.Request) -> web.Response:
    served = _served(request)
    grads = await _run(served, served.worker.gradients)
    return _reply(list(grads.values()), [Gradient(name=n) for n in grads])


async def set_gradients(request: web.Request) -> web.Response:
    served, frames = _served(request), await _frames(request, None)
    grads = {_meta(meta, Gradient).name: g for g, meta in frames}
    await _run(served, lambda: served.worker.set_gradients(grads))
    return _json(Ack())


async def step(request: web.Request) -> web.Response:
    served = _served(request)
    await _run(served, served.worker.step)
    return _json(Ack())


async def profile(request: web.Request) -> web.Response:
    from device.dora.profile import profile_layers

    req = await parse_body(request, ProfileRequest)
    _checkpoint(req.model)
    _torch_threads(request.app)
    return _json(await asyncio.to_thread(profile_layers, req.model, req.batch, req.seq_len, req.rounds))


async def echo(request: web.Request) -> web.Response:
    """The body back: the coordinator times it to measure this device's link."""
    return web.Response(body=await request.read(), content_type="application/octet-stream")


def add_routes(app: web.Application, threads: int | None = None) -> None:
    """Dora's routes; stages compute with ``threads`` torch threads (None: torch's default)."""
    app[THREADS] = threads or 0
    app[STAGES] = {}
    app.router.add_post("/v1/dora/echo", echo)
    app.router.add_post("/v1/dora/profile", profile)
    app.router.add_post("/v1/dora/stages", load_stage)
    app.router.add_get("/v1/dora/stages", list_stages)
    app.router.add_delete("/v1/dora/stages/{id}", drop_stage)
    app.router.add_post("/v1/dora/stages/{id}/infer", infer)
    app.router.add_post("/v1/dora/stages/{id}/forward", forward)
    app.router.add_post("/v1/dora/stages/{id}/loss", loss)
    app.router.add_post("/v1/dora/stages/{id}/backward", backward)
    app.router.add_get("/v1/dora/stages/{id}/gradients", get_gradients)
    app.router.add_post("/v1/dora/stages/{id}/gradients", set_gradients)
    app.router.add_post("/v1/dora/stages/{id}/step", step)
