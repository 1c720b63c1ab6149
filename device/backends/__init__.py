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


def load_backend(kind: str, model: str | Path, threads: int | None = None) -> Backend:
    """``threads``: compute threads for llama.cpp and torch (ExecuTorch's XNNPACK
    pool sizes itself to the machine's cores)."""
    from edgeweave.export.cache import runtime_file
    from edgeweave.models.registry import resolve_checkpoint

    path = resolve_checkpoint(model)
    if kind == "torch":
        from device.backends.torch_backend import TorchBackend

        if threads:
            import torch

            torch.set_num_threads(threads)
        return TorchBackend.load(path)
    if kind == "llamacpp":
        from device.backends.llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend(runtime_file(path, "gguf"), n_threads=threads)
    if kind == "executorch":
        from device.backends.executorch_backend import ExecuTorchBackend
        from edgeweave.models.hf_tokenizer import load_tokenizer

        tokenizer = load_tokenizer(path) if path.is_dir() else None
        return ExecuTorchBackend(runtime_file(path, "pte"), tokenizer)
    raise UsageError("backend", f"unknown backend {kind!r} (choose from {', '.join(BACKEND_KINDS)})")


__all__ = ["BACKEND_KINDS", "Backend", "GenerationResult", "GenerationStats", "TokenEvent", "load_backend"]
