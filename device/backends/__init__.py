"""Device inference backends: one interface, one implementation per runtime.

``load_backend(kind, model)`` accepts a model name (``weave-home-device``), a
checkpoint directory, or a runtime file (``.gguf`` for llama.cpp, ``.pte`` for
ExecuTorch).  Given a checkpoint, the runtime file is exported once and cached
(see :mod:`edgeweave.export.cache`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from device.backends.base import Backend, GenerationResult, GenerationStats, TokenEvent
from edgeweave.errors import UsageError

BackendKind = Literal["torch", "llamacpp", "executorch"]
BACKEND_KINDS: tuple[BackendKind, ...] = ("torch", "llamacpp", "executorch")


def load_backend(kind: str, model: str | Path) -> Backend:
    from edgeweave.export.cache import runtime_file
    from edgeweave.models.registry import resolve_checkpoint

    path = resolve_checkpoint(model)
    if kind == "torch":
        from device.backends.torch_backend import TorchBackend

        return TorchBackend.load(path)
    if kind == "llamacpp":
        from device.backends.llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend(runtime_file(path, "gguf"))
    if kind == "executorch":
        from device.backends.executorch_backend import ExecuTorchBackend

        return ExecuTorchBackend(runtime_file(path, "pte"))
    raise UsageError("backend", f"unknown backend {kind!r} (choose from {', '.join(BACKEND_KINDS)})")


__all__ = ["BACKEND_KINDS", "Backend", "GenerationResult", "GenerationStats", "TokenEvent", "load_backend"]
