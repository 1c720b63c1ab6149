"""Where named models live: the weave-home checkpoints and the traffic CNNs, committed with the repo.

``resolve_checkpoint`` turns a model argument (a model name such as
``weave-home-device``, a bundled real model such as ``smollm2-135m-instruct``,
or a path to a checkpoint directory or GGUF file) into a path.
It imports no torch for a model that resolves (config validation, a daemon
serving only llama.cpp): a vision variant is known by its committed weights,
and the vision module (torch) is read only to explain a miss.
"""

from __future__ import annotations

from pathlib import Path

from edgeweave.errors import ModelFileError
from edgeweave.models.bundled import BUNDLED
from edgeweave.models.config import PRESETS

WEIGHTS_DIR = Path(__file__).parent / "weights"


def checkpoint_dir(name: str) -> Path:
    return WEIGHTS_DIR / name


def _committed(name: str) -> bool:
    return Path(name).name == name and (checkpoint_dir(name) / "config.json").is_file()


def _named(name: str) -> Path:
    path = checkpoint_dir(name)
    if not (path / "config.json").is_file():
        raise ModelFileError(str(path), f"weights for {name} are missing; run `edgeweave train {name}`")
    return path


def resolve_checkpoint(model: str | Path) -> Path:
    name = str(model)
    if name in PRESETS or _committed(name):
        return _named(name)
    if name in BUNDLED:
        return BUNDLED[name]()
    path = Path(model)
    if path.exists():
        return path
    from edgeweave.models.vision import VARIANTS

    if name in VARIANTS:
        return _named(name)
    names = ", ".join([*PRESETS, *BUNDLED, *VARIANTS])
    raise ModelFileError(str(path), f"no such file or directory (and not a model name: {names})")
