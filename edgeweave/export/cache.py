"""Cache of runtime files exported from checkpoints.

``runtime_file(path, "gguf")`` returns ``path`` itself when it already is a
runtime file of that kind, else exports the checkpoint once into
``$EDGEWEAVE_CACHE`` (default ``~/.cache/edgeweave``) under a key derived from
the checkpoint's bytes, so a retrained model is re-exported and an unchanged
one is not; a target whose export format changed carries its format in the
name (``FORMAT``), so a file exported by an older edgeweave is not reused.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgeweave.errors import ModelFileError

SUFFIX = {"gguf": ".gguf", "pte": ".pte", "onnx": ".onnx"}
FORMAT = {"pte": "-sdpa"}  # .pte programs on ExecuTorch's KV-cache and SDPA kernels


def cache_root() -> Path:
    return Path(os.environ.get("EDGEWEAVE_CACHE", Path.home() / ".cache" / "edgeweave"))


def checkpoint_key(directory: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors")):
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def cached_export(checkpoint: Path, target: str) -> Path:
    """Where the cache keeps ``checkpoint`` exported to ``target`` (present or not)."""
    return (
        cache_root()
        / "exports"
        / f"{checkpoint.name}-{checkpoint_key(checkpoint)}{FORMAT.get(target, '')}{SUFFIX[target]}"
    )


def runtime_file(path: Path, target: str) -> Path:
    path = Path(path)
    suffix = SUFFIX[target]
    if path.is_file():
        if path.suffix != suffix:
            raise ModelFileError(str(path), f"expected a {suffix} file or a checkpoint directory")
        return path
    from edgeweave.export import export_model

    out = cached_export(path, target)
    if not out.is_file():
        export_model(path, target, out)
    return out
