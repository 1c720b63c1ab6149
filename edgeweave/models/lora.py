"""LoRA adapters of the weave-home family: the one in-memory form and its file format.

An adapter holds, for each adapted linear layer (its module path inside
:class:`edgeweave.models.llama.Transformer`, e.g. ``model.layers.0.self_attn.q_proj``), a pair
``A [rank, in]``, ``B [out, rank]``; the layer computes ``base(x) + scaling * x @ A.T @ B.T``
with ``scaling = alpha / rank`` (LoRA, Hu et al. 2021).  On disk it is a PEFT adapter directory
(``adapter_config.json`` + ``adapter_model.safetensors``, keys
``base_model.model.<path>.lora_A.weight``), so PEFT loads ours and we load PEFT's.  Trained by
tLoRA (:mod:`cloud.tlora`), served by the cloud engine and, exported to a GGUF LoRA file
(:mod:`edgeweave.export.gguf_lora`), by llama.cpp on a device.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeweave.errors import ModelFileError
from edgeweave.fileio import atomic_output
from edgeweave.models.config import ModelConfig

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")
TARGETS = ATTENTION_TARGETS + MLP_TARGETS
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."


class LoraConfig(BaseModel):
    """Rank, alpha and which linear layers (by their name inside a decoder layer) are adapted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(ge=1, le=256)
    alpha: float = Field(gt=0.0)
    target_modules: tuple[str, ...] = ATTENTION_TARGETS

    @field_validator("target_modules")
    @classmethod
    def _known_targets(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(TARGETS))
        if not v or unknown:
            raise ValueError(f"target_modules must be a non-empty subset of {', '.join(TARGETS)} (got {unknown or v})")
        return tuple(t for t in TARGETS if t in v)  # one canonical order

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


def module_shape(cfg: ModelConfig, target: str) -> tuple[int, int]:
    """(in_features, out_features) of a target linear layer."""
    q, kv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    return {
        "q_proj": (cfg.dim, q),
        "k_proj": (cfg.dim, kv),
        "v_proj": (cfg.dim, kv),
        "o_proj": (q, cfg.dim),
        "gate_proj": (cfg.dim, cfg.ffn_dim),
        "up_proj": (cfg.dim, cfg.ffn_dim),
        "down_proj": (cfg.ffn_dim, cfg.dim),
    }[target]


def module_path(layer: int, target: str) -> str:
    block = "self_attn" if target in ATTENTION_TARGETS else "mlp"
    return f"model.layers.{layer}.{block}.{target}"


def module_paths(cfg: ModelConfig, lora: LoraConfig) -> list[str]:
    return [module_path(i, t) for i in range(cfg.n_layers) for t in lora.target_modules]


@dataclass
class LoraAdapter:
    """One adapter's weights: module path -> (A [rank, in], B [out, rank])."""

    config: LoraConfig
    base_model: str  # the base it was trained on (a model name or checkpoint path)
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @classmethod
    def init(cls, cfg: ModelConfig, lora: LoraConfig, base_model: str, seed: int) -> LoraAdapter:
        """PEFT's default initialisation: A Kaiming-uniform (a = sqrt 5, as nn.Linear), B zero."""
        gen = torch.Generator().manual_seed(seed)
        weights = {}
        for path in module_paths(cfg, lora):
            fan_in, fan_out = module_shape(cfg, path.rsplit(".", 1)[1])
            bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) on a [rank, fan_in] matrix
            a = (torch.rand(lora.rank, fan_in, generator=gen) * 2 - 1) * bound
            weights[path] = (a, torch.zeros(fan_out, lora.rank))
        return cls(lora, base_model, weights)

    def check_fits(self, cfg: ModelConfig) -> None:
        """Raise ModelFileError unless every module and shape matches a model of ``cfg``."""
        want = set(module_paths(cfg, self.config))
        if set(self.weights) != want:
            missing, extra = sorted(want - set(self.weights)), sorted(set(self.weights) - want)
            raise ModelFileError(
                self.base_model, f"adapter modules do not match the model (missing {missing[:3]}, extra {extra[:3]})"
            )
        for path, (a, b) in self.weights.items():
            fan_in, fan_out = module_shape(cfg, path.rsplit(".", 1)[1])
            if tuple(a.shape) != (self.config.rank, fan_in) or tuple(b.shape) != (fan_out, self.config.rank):
                raise ModelFileError(path, f"adapter shapes {tuple(a.shape)}, {tuple(b.shape)} do not fit the model")

    def save(self, directory: Path) -> Path:
        """Write a PEFT adapter directory (atomically, file by file)."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for path, (a, b) in self.weights.items():
            tensors[f"{PEFT_PREFIX}{path}.lora_A.weight"] = a.detach().float().contiguous()
            tensors[f"{PEFT_PREFIX}{path}.lora_B.weight"] = b.detach().float().contiguous()
        with atomic_output(directory / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp))
        peft_config = {
            "peft_type": "LORA",
            "task_type": None,
            "r": self.config.rank,
            "lora_alpha": self.config.alpha,
            "target_modules": list(self.config.target_modules),
            "lora_dropout": 0.0,
            "bias": "none",
            "fan_in_fan_out": False,
            "inference_mode": True,
            "base_model_name_or_path": self.base_model,
        }
        with atomic_output(directory / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(peft_config, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> LoraAdapter:
        from safetensors.torch import load_file

        cfg_file, weights_file = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not cfg_file.is_file() or not weights_file.is_file():
            raise ModelFileError(
                str(directory), f"not a LoRA adapter directory (needs {CONFIG_FILE} and {WEIGHTS_FILE})"
            )
        try:
            raw = json.loads(cfg_file.read_text())
            lora = LoraConfig(rank=raw["r"], alpha=raw["lora_alpha"], target_modules=tuple(raw["target_modules"]))
            tensors = load_file(str(weights_file))
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise ModelFileError(str(directory), f"unreadable adapter ({e})") from None
        weights = {}
        for key, a in tensors.items():
            if key.endswith(".lora_A.weight"):
                path = key.removeprefix(PEFT_PREFIX).removesuffix(".lora_A.weight")
                b = tensors.get(f"{PEFT_PREFIX}{path}.lora_B.weight")
                if b is None:
                    raise ModelFileError(str(directory), f"{path} has lora_A but no lora_B")
                weights[path] = (a, b)
        return cls(lora, str(raw.get("base_model_name_or_path") or ""), weights)

    def parameters(self) -> Iterable[torch.Tensor]:
        for a, b in self.weights.values():
            yield a
            yield b
