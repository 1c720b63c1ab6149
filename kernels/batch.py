"""One step's attention work over a paged KV cache, as every attention path sees it.

Queries are packed varlen-style: sequence ``b``'s ``q_lens[b]`` new tokens are
rows ``cu_q[b]..cu_q[b+1]`` of ``q`` ``[T, Hq, D]``, and they are the *last*
``q_lens[b]`` of its ``kv_lens[b]`` keys (prefill chunks, decode tokens and
resumed prefixes alike).  Keys live in caches ``[num_slots, Hkv, D]`` addressed
through block tables: key ``k`` of sequence ``b`` is slot
``block_tables[b][k // block_size] * block_size + k % block_size``.
A contiguous buffer is the special case of consecutive block ids.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch

from kernels.packing import SeqWork


@dataclass(frozen=True)
class AttnBatch:
    q_lens: Sequence[int]
    kv_lens: Sequence[int]
    block_tables: Sequence[Sequence[int]]
    block_size: int
    prefixes: Sequence[tuple[Hashable, int] | None] = ()  # (shared-prefix key, its length) per sequence
    _cu: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.q_lens)
        if len(self.kv_lens) != n or len(self.block_tables) != n or (self.prefixes and len(self.prefixes) != n):
            raise ValueError("q_lens, kv_lens, block_tables (and prefixes) need one entry per sequence")
        for b, (q, kv, bt) in enumerate(zip(self.q_lens, self.kv_lens, self.block_tables, strict=False)):
            if not 1 <= q <= kv or len(bt) * self.block_size < kv:
                raise ValueError(f"sequence {b}: q_len={q} kv_len={kv} with {len(bt)} blocks of {self.block_size}")
        cu = [0]
        for q in self.q_lens:
            cu.append(cu[-1] + q)
        object.__setattr__(self, "_cu", cu)

    @property
    def num_seqs(self) -> int:
        return len(self.q_lens)

    @property
    def num_tokens(self) -> int:
        return self._cu[-1]

    @property
    def cu_q(self) -> list[int]:
        return self._cu

    def works(self) -> list[SeqWork]:
        out = []
        for b, (q, kv) in enumerate(zip(self.q_lens, self.kv_lens, strict=False)):
            pre = self.prefixes[b] if self.prefixes else None
            if pre is not None and q == 1 and 0 < pre[1] < kv:
                out.append(SeqWork(q, kv, pre[0], pre[1]))
            else:
                out.append(SeqWork(q, kv))
        return out

    def valid_pairs(self) -> int:
        """Query-key pairs causal attention needs (per head)."""
        return sum(q * kv - q * (q - 1) // 2 for q, kv in zip(self.q_lens, self.kv_lens, strict=False))

    def block_table_tensors(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat block ids, per-sequence offset into them) as int32 tensors."""
        flat: list[int] = []
        offsets = []
        for bt in self.block_tables:
            offsets.append(len(flat))
            flat.extend(bt)
        return (
            torch.tensor(flat or [0], dtype=torch.int32, device=device),
            torch.tensor(offsets, dtype=torch.int32, device=device),
        )


def slots_of(block_table: Sequence[int], n: int, block_size: int) -> torch.Tensor:
    """Cache slots of a sequence's first ``n`` keys."""
    k = torch.arange(n)
    return torch.as_tensor(block_table, dtype=torch.long)[k // block_size] * block_size + k % block_size
