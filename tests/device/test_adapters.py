"""A device serves each configured LoRA adapter as model ``<name>:<adapter>``: on torch (merged),
on llama.cpp (the exported GGUF LoRA on its own context), refused on ExecuTorch."""

from __future__ import annotations

import torch

from edgeweave.models.config import ModelConfig
from edgeweave.models.lora import TARGETS, LoraAdapter, LoraConfig


def random_adapter(cfg: ModelConfig, seed: int, rank: int = 8, targets: tuple[str, ...] = TARGETS) -> LoraAdapter:
    """PEFT's init, then B random too (zero B is the identity), large enough to change greedy answers."""
    adapter = LoraAdapter.init(cfg, LoraConfig(rank=rank, alpha=2.0 * rank, target_modules=targets), "weave-home-device", seed)
    gen = torch.Generator().manual_seed(seed + 1)
    for path, (a, b) in adapter.weights.items():
        adapter.weights[path] = (a, torch.randn(b.shape, generator=gen) * 0.3)
    return adapter


