"""Load and save checkpoint directories in the Hugging Face layout.

A directory holds ``config.json`` and ``model.safetensors`` (or shards listed in
``model.safetensors.index.json``).  Real Llama / Qwen2 checkpoints and the
weave-home models load through the same function; every problem with the
directory is a one-line :class:`ModelFileError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgeweave.errors import ModelFileError
from edgeweave.fileio import atomic_output
from edgeweave.models.config import ModelConfig
from edgeweave.models.llama import Transformer

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"


def _weight_files(directory: Path) -> list[Path]:
    single = directory / WEIGHTS_NAME
    if single.is_file():
        return [single]
    index = directory / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelFileError(str(index), f"cannot read shard index ({e})") from None
        return [directory / name for name in sorted(set(weight_map.values()))]
    raise ModelFileError(str(directory), f"no {WEIGHTS_NAME} or {INDEX_NAME} (only safetensors weights are supported)")


def load_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(directory):
        if not path.is_file():
            raise ModelFileError(str(path), "weight shard listed in the index is missing")
        try:
            state.update(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelFileError(str(path), f"corrupt safetensors file ({e})") from None
    return state


def load_checkpoint(directory: str | Path, dtype: torch.dtype = torch.float32) -> Transformer:
    directory = Path(directory)
    if not directory.exists():
        raise ModelFileError(str(directory), "no such file or directory")
    if not directory.is_dir():
        raise ModelFileError(str(directory), "expected a checkpoint directory (config.json + model.safetensors)")
    cfg = ModelConfig.from_hf_dir(directory)
    state = load_state_dict(directory)
    model = Transformer(cfg)
    expected = dict(model.state_dict())
    if cfg.tie_embeddings:
        expected.pop("lm_head.weight", None)
        state.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(k for k in set(state) - set(expected) if not k.endswith("rotary_emb.inv_freq"))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ModelFileError(str(directory), f"weights do not match config.json ({detail})")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ModelFileError(
                str(directory), f"tensor {name} has shape {tuple(state[name].shape)}, config says {tuple(tensor.shape)}"
            )
    model.load_state_dict(state, strict=False)
    return model.to(dtype).eval()


def save_checkpoint(model: Transformer, directory: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight")
    with atomic_output(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with atomic_output(directory / "config.json") as tmp:
        hf = model.config.to_hf_dict() | {"torch_dtype": str(dtype).removeprefix("torch.")}
        tmp.write_text(json.dumps(hf, indent=2) + "\n")
    return directory
