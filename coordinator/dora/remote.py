"""A pipeline stage on a device daemon, driven from the coordinator's side (blocking calls).

:class:`RemoteStage` speaks :mod:`device.dora.routes` in tensor frames and
has :class:`device.dora.stage.StageWorker`'s methods, so :mod:`coordinator.dora.driver`
runs the same pipelines over the network as in-process.  Every request is
signed with the cluster key and every answer's signature checked, as for
generation; a refusal or an unreachable daemon is :class:`StageError` with the
daemon's message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import torch

from coordinator.cluster.device_client import refusal
from edgeweave.errors import EdgeweaveError
from edgeweave.wire.auth import HEADER_NONCE, HEADER_RESPONSE_SIGNATURE, ClusterKey
from edgeweave.wire.tensor_frames import CONTENT_TYPE, decode, encode, pack, unpack


class StageError(EdgeweaveError):
    """A device refused a stage call, could not be reached, or could not prove it is in the cluster."""


def call(url: str, key: ClusterKey, method: str, path: str, body: bytes = b"", json_body: bool = False) -> bytes:
    headers = key.sign_request(method, path, body)
    headers["Content-Type"] = "application/json" if json_body else CONTENT_TYPE
    req = urllib.request.Request(url.rstrip("/") + path, data=body or None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            status, raw, sig = resp.status, resp.read(), resp.headers.get(HEADER_RESPONSE_SIGNATURE)
    except urllib.error.HTTPError as e:
        status, raw, sig = e.code, e.read(), e.headers.get(HEADER_RESPONSE_SIGNATURE)
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise StageError(f"{url}{path}: unreachable ({e})") from None
    if not key.response_valid(headers[HEADER_NONCE], status, raw, sig):
        raise StageError(f"{url}{path}: the answer is not signed with the cluster key")
    if status != 200:
        raise StageError(f"{url}{path}: HTTP {status}: {refusal(status, raw, None).error.message}")
    return raw


def profile(
    url: str, key: ClusterKey, model: str, batch: int = 2, seq_len: int = 32, rounds: int = 3
) -> dict[str, Any]:
    """Per-layer times measured on the device (``POST /v1/dora/profile``)."""
    body = json.dumps({"model": model, "batch": batch, "seq_len": seq_len, "rounds": rounds}).encode()
    return json.loads(call(url, key, "POST", "/v1/dora/profile", body, json_body=True))


class RemoteStage:
    def __init__(self, url: str, key: ClusterKey, sid: str) -> None:
        self.url, self.key, self.sid = url, key, sid

    @classmethod
    def load(
        cls, url: str, key: ClusterKey, sid: str, model: str, start: int, end: int, lr: float = 0.0
    ) -> RemoteStage:
        body = json.dumps({"id": sid, "model": model, "start": start, "end": end, "lr": lr}).encode()
        call(url, key, "POST", "/v1/dora/stages", body, json_body=True)
        return cls(url, key, sid)

    def _frames(self, verb: str, frames: list[bytes]) -> list[torch.Tensor]:
        raw = call(self.url, self.key, "POST", f"/v1/dora/stages/{self.sid}/{verb}", pack(frames))
        return [decode(f)[0] for f in unpack(raw)]

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return self._frames("infer", [encode(x)])[0]

    def forward(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return self._frames("forward", [encode(x, {"key": key})])[0]

    def loss(
        self, key: str, x: torch.Tensor, targets: torch.Tensor, total_targets: int
    ) -> tuple[float, torch.Tensor | None]:
        out = self._frames("loss", [encode(x, {"key": key, "total": total_targets}), encode(targets)])
        return float(out[0]), (out[1] if len(out) > 1 else None)

    def backward(self, key: str, grad: torch.Tensor) -> torch.Tensor | None:
        out = self._frames("backward", [encode(grad, {"key": key})])
        return out[0] if out else None

    def gradients(self) -> dict[str, torch.Tensor]:
        raw = call(self.url, self.key, "GET", f"/v1/dora/stages/{self.sid}/gradients")
        return {str(meta["name"]): t for t, meta in (decode(f) for f in unpack(raw))}

    def set_gradients(self, grads: dict[str, torch.Tensor]) -> None:
        frames = [encode(g, {"name": n}) for n, g in grads.items()]
        call(self.url, self.key, "POST", f"/v1/dora/stages/{self.sid}/gradients", pack(frames))

    def step(self) -> None:
        call(self.url, self.key, "POST", f"/v1/dora/stages/{self.sid}/step")

    def unload(self) -> None:
        call(self.url, self.key, "DELETE", f"/v1/dora/stages/{self.sid}")
