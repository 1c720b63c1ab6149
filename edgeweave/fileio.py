"""Atomic file output: write to a temporary sibling, rename on success.

Exporters and checkpoint writers use it so a failed or interrupted write
never leaves a partial file at the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; it becomes ``dest`` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        # mkstemp creates 0600: give the file normal permissions, after the block, since some
        # writers (safetensors' save_file) replace the file they are given with a new 0600 one
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
