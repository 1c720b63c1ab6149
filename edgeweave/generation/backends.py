"""Finding a runtime by name: ``load_backend(kind, model)``.

Each runtime registers a loader under the ``edgeweave.backends`` entry-point group (torch,
llama.cpp and ExecuTorch are the device side's, ``device/backends/``), so the core names no side
and a process imports only the runtime it asks for: a daemon serving llama.cpp never imports
torch's or ExecuTorch's.  ``model`` is a model name (``weave-home-device``), a checkpoint
directory, or a runtime file (``.gguf`` for llama.cpp, ``.pte`` for ExecuTorch); given a
checkpoint, a loader exports the runtime file once and caches it (:mod:`edgeweave.export.cache`).
``adapter``: a LoRA adapter (a PEFT adapter directory, :mod:`edgeweave.models.lora`) the backend
applies to every answer; a runtime that cannot says so with a :class:`UsageError` naming ``adapters``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal

from edgeweave.errors import UsageError
from edgeweave.generation.backend import Backend

BackendKind = Literal["torch", "llamacpp", "executorch"]
BACKEND_KINDS: tuple[BackendKind, ...] = ("torch", "llamacpp", "executorch")
GROUP = "edgeweave.backends"

Loader = Callable[[Path, int | None, int, Path | None], Backend]  # (path, threads, slots, adapter) -> Backend


def _loader(kind: str) -> Loader:
    found = entry_points(group=GROUP, name=kind)
    if not found:
        known = sorted(ep.name for ep in entry_points(group=GROUP))
        raise UsageError("backend", f"unknown backend {kind!r} (choose from {', '.join(known)})")
    return next(iter(found)).load()


def load_backend(
    kind: str, model: str | Path, threads: int | None = None, slots: int = 1, adapter: Path | None = None
) -> Backend:
    """``threads``: compute threads of the runtime (default: its own choice); ``slots``: sequences
    decoded together in one batch (a runtime that cannot batch says so with a :class:`UsageError`
    naming ``slots``); ``adapter``: a PEFT adapter directory applied to every answer."""
    from edgeweave.models.registry import resolve_checkpoint

    loader = _loader(kind)
    path = resolve_checkpoint(model)
    return loader(path, threads, slots, adapter)
