"""Pure-torch attention over a paged KV cache: the references every Triton
kernel is checked against, and the engine's attention on CPU.

- :func:`sdpa_per_request`: one ``scaled_dot_product_attention`` call per
  sequence over its gathered keys (the engine's CPU path);
- :func:`sdpa_padded`: the whole batch padded to the longest query and key
  lengths in one call (the padded-batch baseline; it computes every padded pair);
- :func:`merge_partials`: exact log-sum-exp merge of partial outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.batch import AttnBatch, slots_of


def _causal_mask(q_len: int, kv_len: int, device: torch.device) -> torch.Tensor:
    qpos = torch.arange(kv_len - q_len, kv_len, device=device)
    return torch.arange(kv_len, device=device)[None, :] <= qpos[:, None]


def sdpa_per_request(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, batch: AttnBatch, scale: float | None = None
) -> torch.Tensor:
    """q [T, Hq, D], caches [slots, Hkv, D] -> out [T, Hq, D]."""
    out = torch.empty_like(q)
    for b in range(batch.num_seqs):
        lo, hi = batch.cu_q[b], batch.cu_q[b + 1]
        kv_len = batch.kv_lens[b]
        slots = slots_of(batch.block_tables[b], kv_len, batch.block_size).to(q.device)
        k, v = k_cache[slots].transpose(0, 1), v_cache[slots].transpose(0, 1)
        mask = _causal_mask(hi - lo, kv_len, q.device)
        o = F.scaled_dot_product_attention(q[lo:hi].transpose(0, 1), k, v, attn_mask=mask, scale=scale, enable_gqa=True)
        out[lo:hi] = o.transpose(0, 1)
    return out


def sdpa_padded(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, batch: AttnBatch, scale: float | None = None
) -> torch.Tensor:
    """One SDPA call over the batch padded to [B, H, max_q, max_kv]."""
    n, max_q, max_kv = batch.num_seqs, max(batch.q_lens), max(batch.kv_lens)
    hq, d = q.shape[1], q.shape[2]
    hkv = k_cache.shape[1]
    qp = q.new_zeros(n, max_q, hq, d)
    kp = k_cache.new_zeros(n, max_kv, hkv, d)
    vp = v_cache.new_zeros(n, max_kv, hkv, d)
    mask = torch.zeros(n, 1, max_q, max_kv, dtype=torch.bool, device=q.device)
    for b in range(n):
        ql, kvl = batch.q_lens[b], batch.kv_lens[b]
        qp[b, :ql] = q[batch.cu_q[b] : batch.cu_q[b + 1]]
        slots = slots_of(batch.block_tables[b], kvl, batch.block_size).to(q.device)
        kp[b, :kvl], vp[b, :kvl] = k_cache[slots], v_cache[slots]
        mask[b, 0, :ql, :kvl] = _causal_mask(ql, kvl, q.device)
        mask[b, 0, ql:, 0] = True  # padding rows see one key so softmax stays finite; they are dropped
    o = F.scaled_dot_product_attention(
        qp.transpose(1, 2), kp.transpose(1, 2), vp.transpose(1, 2), attn_mask=mask, scale=scale, enable_gqa=True
    ).transpose(1, 2)
    return torch.cat([o[b, : batch.q_lens[b]] for b in range(n)])


def merge_partials(outs: torch.Tensor, lses: torch.Tensor) -> torch.Tensor:
    """Combine partial attention outputs over disjoint key sets.

    outs [P, ..., D] (each normalised over its own keys), lses [P, ...] natural
    log-sum-exp of each part's scores (-inf for a part that saw no key)."""
    top = lses.max(dim=0).values
    w = torch.exp(lses - top)
    return (outs * w.unsqueeze(-1)).sum(0) / w.sum(0).unsqueeze(-1)
