"""Where named models live: the weave-home checkpoints and the traffic CNNs, committed with the repo.

``resolve_checkpoint`` turns a model argument (a model name such as
``weave-home-device`` or a path to a checkpoint directory) into a directory.
"""

from __future__ import annotations

from pathlib import Path

from edgeweave.errors import ModelFileError
from edgeweave.models.config import PRESETS
from edgeweave.models.vision import VARIANTS

WEIGHTS_DIR = Path(__file__).parent / "weights"


def checkpoint_dir(name: str) -> Path:
    return WEIGHTS_DIR / name


def resolve_checkpoint(model: str | Path) -> Path:
    if str(model) in PRESETS or str(model) in VARIANTS:
        path = checkpoint_dir(str(model))
        if not (path / "config.json").is_file():
            raise ModelFileError(str(path), f"weights for {model} are missing; run `edgeweave train {model}`")
        return path
    path = Path(model)
    if not path.exists():
        names = ", ".join([*PRESETS, *VARIANTS])
        raise ModelFileError(str(path), f"no such file or directory (and not a model name: {names})")
    return path
