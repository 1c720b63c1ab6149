"""Random paged batches for the attention tests (lengths skewed like the Azure trace)."""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence

import torch

from edgeweave.data.traces import load_trace
from kernels.batch import AttnBatch

_TRACE = [r.prompt_tokens for r in load_trace()]


def trace_lengths(rng: random.Random, n: int, longest: int) -> list[int]:
    """Context lengths drawn from the Azure trace, scaled so its p99 maps to ``longest``."""
    p99 = sorted(_TRACE)[int(0.99 * len(_TRACE))]
    return [max(1, min(longest, round(rng.choice(_TRACE) * longest / p99))) for _ in range(n)]


def paged_batch(
    q_lens: Sequence[int],
    kv_lens: Sequence[int],
    heads: tuple[int, int, int],
    dtype: torch.dtype,
    block_size: int = 16,
    prefixes: Sequence[tuple[Hashable, int] | None] = (),
    seed: int = 0,
) -> tuple[AttnBatch, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch whose sequences' blocks are scattered at random over one cache;
    sequences with the same prefix key share that prefix's physical blocks."""
    hq, hkv, d = heads
    gen = torch.Generator().manual_seed(seed)
    need = [-(-kv // block_size) for kv in kv_lens]
    perm = torch.randperm(sum(need) + 3, generator=gen).tolist()
    tables, first = [], {}
    for b, n in enumerate(need):
        bt, perm = perm[:n], perm[n:]
        pre = prefixes[b] if prefixes else None
        if pre is not None:
            owner = first.setdefault(pre[0], b)
            if owner != b:
                shared = pre[1] // block_size  # whole blocks; a partial last block holds the same keys
                bt[:shared] = tables[owner][:shared]
        tables.append(bt)
    slots = (max(max(bt) for bt in tables) + 1) * block_size
    kc = torch.randn(slots, hkv, d, generator=gen).to(dtype)
    vc = torch.randn(slots, hkv, d, generator=gen).to(dtype)
    for b, pre in enumerate(prefixes or ()):  # a shared partial block: copy the owner's prefix keys
        if pre is not None and first[pre[0]] != b and pre[1] % block_size:
            src, dst = tables[first[pre[0]]], tables[b]
            blk = pre[1] // block_size
            lo_s, lo_d = src[blk] * block_size, dst[blk] * block_size
            kc[lo_d : lo_d + pre[1] % block_size] = kc[lo_s : lo_s + pre[1] % block_size]
            vc[lo_d : lo_d + pre[1] % block_size] = vc[lo_s : lo_s + pre[1] % block_size]
    q = torch.randn(sum(q_lens), hq, d, generator=gen).to(dtype)
    return AttnBatch(q_lens, kv_lens, tables, block_size, prefixes), q, kc, vc
