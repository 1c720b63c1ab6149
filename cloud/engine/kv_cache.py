"""The KV cache tensors: per layer one K and one V pool of ``num_blocks *
block_size`` slots (``[slots, Hkv, D]``), plus host memory for swapped-out
blocks.  Sized from a memory budget."""

from __future__ import annotations

import torch

from edgeweave.models.config import ModelConfig


def bytes_per_block(cfg: ModelConfig, block_size: int, dtype: torch.dtype) -> int:
    elem = torch.empty((), dtype=dtype).element_size()
    return 2 * cfg.n_layers * block_size * cfg.n_kv_heads * cfg.head_dim * elem


class PagedKVCache:
    def __init__(
        self, cfg: ModelConfig, num_blocks: int, block_size: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        shape = (num_blocks * block_size, cfg.n_kv_heads, cfg.head_dim)
        self.block_size = block_size
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.n_layers)]

    def _slots(self, blocks: list[int]) -> torch.Tensor:
        b = torch.as_tensor(blocks, dtype=torch.long, device=self.k[0].device)
        return (b[:, None] * self.block_size + torch.arange(self.block_size, device=b.device)).reshape(-1)

    def swap_out(self, blocks: list[int]) -> torch.Tensor:
        """Copy ``blocks`` to host memory: [layers, 2, slots, Hkv, D]."""
        slots = self._slots(blocks)
        return torch.stack([torch.stack([k[slots], v[slots]]) for k, v in zip(self.k, self.v, strict=True)]).cpu()

    def swap_in(self, saved: torch.Tensor, blocks: list[int]) -> None:
        slots = self._slots(blocks)
        saved = saved.to(self.k[0].device)
        for layer, (k, v) in enumerate(zip(self.k, self.v, strict=True)):
            k[slots] = saved[layer, 0]
            v[slots] = saved[layer, 1]
