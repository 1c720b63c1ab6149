"""A pipeline stage on a device daemon, driven from the coordinator's side (blocking calls).

:class:`RemoteStage` speaks :mod:`device.dora.routes` (bodies typed in :mod:`edgeweave.wire.dora`,
tensors in tensor frames) and has :class:`device.dora.stage.StageWorker`'s methods, so
:mod:`coordinator.dora.driver` runs the same pipelines over the network as in-process.  Calls go
through the core's signed client (:class:`edgeweave.wire.client.BlockingClient` with the cluster
key): a refusal, an unreachable daemon or one that cannot sign is that client's
:class:`~edgeweave.wire.client.CallError`, with the daemon's message.
"""

from __future__ import annotations

import torch

from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.client import BlockingClient, answer
from edgeweave.wire.dora import Gradient, LayerProfile, LoadedStage, LoadStage, LossShare, MicroBatch, ProfileRequest
from edgeweave.wire.tensor_frames import CONTENT_TYPE, decode, encode, pack, unpack

TIMEOUT_S = 600.0  # a stage's forward pass of a big batch on a slow device


def call(url: str, key: ClusterKey, method: str, path: str, body: bytes = b"") -> bytes:
    """One signed call whose 200 answer's body is returned (tensor frames, when there is a body)."""
    return BlockingClient(url, key=key).call(method, path, body, CONTENT_TYPE, TIMEOUT_S)


def profile(url: str, key: ClusterKey, model: str, batch: int = 2, seq_len: int = 32, rounds: int = 3) -> LayerProfile:
    """Per-layer times measured on the device (``POST /v1/dora/profile``)."""
    req = ProfileRequest(model=model, batch=batch, seq_len=seq_len, rounds=rounds)
    return BlockingClient(url, key=key).post("/v1/dora/profile", req, LayerProfile, TIMEOUT_S)


class RemoteStage:
    def __init__(self, url: str, key: ClusterKey, sid: str) -> None:
        self.url, self.key, self.sid = url, key, sid
        self.client = BlockingClient(url, key=key)

    @classmethod
    def load(
        cls, url: str, key: ClusterKey, sid: str, model: str, start: int, end: int, lr: float = 0.0
    ) -> RemoteStage:
        req = LoadStage(id=sid, model=model, start=start, end=end, lr=lr)
        BlockingClient(url, key=key).post("/v1/dora/stages", req, LoadedStage, TIMEOUT_S)
        return cls(url, key, sid)

    def _path(self, verb: str = "") -> str:
        return f"/v1/dora/stages/{self.sid}" + (f"/{verb}" if verb else "")

    def _frames(self, verb: str, frames: list[bytes]) -> list[torch.Tensor]:
        raw = self.client.call("POST", self._path(verb), pack(frames), CONTENT_TYPE, TIMEOUT_S)
        return [decode(f)[0] for f in unpack(raw)]

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return self._frames("infer", [encode(x)])[0]

    def forward(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return self._frames("forward", [encode(x, MicroBatch(key=key).model_dump())])[0]

    def loss(
        self, key: str, x: torch.Tensor, targets: torch.Tensor, total_targets: int
    ) -> tuple[float, torch.Tensor | None]:
        meta = LossShare(key=key, total=total_targets).model_dump()
        out = self._frames("loss", [encode(x, meta), encode(targets)])
        return float(out[0]), (out[1] if len(out) > 1 else None)

    def backward(self, key: str, grad: torch.Tensor) -> torch.Tensor | None:
        out = self._frames("backward", [encode(grad, MicroBatch(key=key).model_dump())])
        return out[0] if out else None

    def gradients(self) -> dict[str, torch.Tensor]:
        raw = self.client.call("GET", self._path("gradients"), timeout_s=TIMEOUT_S)
        return {answer(Gradient, meta, self.url).name: t for t, meta in (decode(f) for f in unpack(raw))}

    def set_gradients(self, grads: dict[str, torch.Tensor]) -> None:
        frames = [encode(g, Gradient(name=n).model_dump()) for n, g in grads.items()]
        self.client.call("POST", self._path("gradients"), pack(frames), CONTENT_TYPE, TIMEOUT_S)

    def step(self) -> None:
        self.client.call("POST", self._path("step"), timeout_s=TIMEOUT_S)

    def unload(self) -> None:
        self.client.call("DELETE", self._path(), timeout_s=TIMEOUT_S)
