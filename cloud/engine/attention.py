"""The engine's attention paths, one interface: ``prepare`` once per iteration
(the batch's layout), then ``__call__`` per layer.

- ``torch``: SDPA per sequence over keys gathered from the paged cache (CPU);
- ``packed``: PackInfer's packed Triton kernel (the GPU default), planned once
  per iteration for all layers; decode sequences sharing cached prefix blocks
  are one family whose prefix is walked once;
- ``varlen``: the unpacked Triton kernel (the FlashAttention-style baseline).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from kernels.batch import AttnBatch
from kernels.packed_tables import build_tables
from kernels.packing import capacity_for, plan_groups
from kernels.reference import sdpa_per_request
from kernels.triton_attention import BLOCK_N, VarlenTables, block_m_for, packed_attention, varlen_attention


class Attention(Protocol):
    name: str

    def prepare(self, batch: AttnBatch) -> object: ...

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, meta: object) -> torch.Tensor: ...


class TorchAttention:
    name = "torch"

    def __init__(self, block_size: int, scale: float) -> None:
        self.block_size, self.scale = block_size, scale

    def prepare(self, batch: AttnBatch) -> AttnBatch:
        return batch

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, meta: object) -> torch.Tensor:
        assert isinstance(meta, AttnBatch)
        return sdpa_per_request(q, k, v, meta, self.scale)


class PackedAttention:
    name = "packed"

    def __init__(self, block_size: int, scale: float, rep: int, device: torch.device, programs: int) -> None:
        self.block_size, self.scale, self.device = block_size, scale, device
        self.rep = rep
        self.programs = programs  # programs per KV head to spread the keys over

    def prepare(self, batch: AttnBatch) -> object:
        decode_only = all(q == 1 for q in batch.q_lens)
        slots = max(1, (16 if decode_only else 64) // self.rep)
        slots = block_m_for(slots, self.rep) // self.rep
        works = batch.works()
        plan = plan_groups(works, capacity_for(works, self.programs, slots), slots, align=BLOCK_N)
        return build_tables(plan, batch, self.device)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, meta: object) -> torch.Tensor:
        return packed_attention(q, k, v, meta, self.block_size, self.scale)  # type: ignore[arg-type]


class VarlenAttention:
    name = "varlen"

    def __init__(self, block_size: int, scale: float, device: torch.device) -> None:
        self.block_size, self.scale, self.device = block_size, scale, device

    def prepare(self, batch: AttnBatch) -> object:
        return VarlenTables(batch, self.device)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, meta: object) -> torch.Tensor:
        return varlen_attention(q, k, v, meta, self.block_size, self.scale)  # type: ignore[arg-type]


def make_attention(
    kind: str, block_size: int, head_dim: int, rep: int, n_kv_heads: int, device: torch.device
) -> Attention:
    scale = 1.0 / math.sqrt(head_dim)
    if kind == "auto":
        kind = "packed" if device.type == "cuda" else "torch"
    if kind == "torch":
        return TorchAttention(block_size, scale)
    if kind == "varlen":
        return VarlenAttention(block_size, scale, device)
    programs = 2 * torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 8
    return PackedAttention(block_size, scale, rep, device, max(1, programs // n_kv_heads))
