"""Triton attention kernels over a paged KV cache: PackInfer's packed kernel and
the unpacked FlashAttention-style varlen baseline.

Both share the inner loop (:func:`_kv_tile`, :func:`_online_update`: online
softmax in the log2 domain, fp32 accumulators, fp16/bf16/fp32 inputs) and the
GQA row layout: a program owns one KV head and its ``BLOCK_M`` rows are
(query token, query head of that KV head) pairs, so every key tile is loaded
once for all ``REP = Hq / Hkv`` heads that read it.

- ``_packed_kernel``: one program per (group, KV head) of a packing plan.  It
  walks only its group's segments (the valid query-key regions), masking rows
  a segment is not visible to and keys past each row's causal limit; rows of a
  split sequence write partial output + log-sum-exp that ``_merge_kernel``
  combines exactly.
- ``_varlen_kernel``: one program per (query tile, sequence, KV head), each
  walking its own sequence's keys up to the tile's causal limit; no packing,
  no splitting, no prefix sharing (the FlashAttention varlen layout).

Under ``TRITON_INTERPRET=1`` both run on CPU tensors (the tests); on a GPU the
engine uses the packed one.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from kernels.batch import AttnBatch
from kernels.packed_tables import PackedTables

LOG2E = 1.4426950408889634
BLOCK_N = 32  # keys per tile unless a caller tunes it


@triton.jit
def _kv_tile(cache, bt, bt_off, keys, kmask, kvh, stride_s, stride_h, offs_d, dmask, BS: tl.constexpr):
    blk = tl.load(bt + bt_off + keys // BS, mask=kmask, other=0)
    slot = blk.to(tl.int64) * BS + keys % BS
    ptrs = cache + slot[:, None] * stride_s + kvh * stride_h + offs_d[None, :]
    return tl.load(ptrs, mask=kmask[:, None] & dmask[None, :], other=0.0)


@triton.jit
def _online_update(q, k, v, valid, m_i, l_i, acc, qk_scale, PREC: tl.constexpr, UPCAST: tl.constexpr):
    if UPCAST:
        q, k, v = q.to(tl.float32), k.to(tl.float32), v.to(tl.float32)
    s = tl.dot(q, tl.trans(k), input_precision=PREC) * qk_scale
    s = tl.where(valid, s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp2(m_i - m_safe)
    p = tl.exp2(s - m_safe[:, None])
    l_new = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PREC)
    return m_new, l_new, acc


@triton.jit
def _packed_kernel(
    q, k_cache, v_cache, out, part_out, part_lse, bt,
    grp_row_ptr, grp_seg_ptr, row_tok, row_pos, row_part,
    seg_bt, seg_klo, seg_khi, seg_rlo, seg_rhi,
    stride_qt, stride_qh, stride_ks, stride_kh, stride_ot, stride_oh, stride_pp, stride_ph,
    qk_scale, n_q_heads, HEAD_DIM: tl.constexpr, REP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    BS: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    g = tl.program_id(0)
    kvh = tl.program_id(1)
    r0 = tl.load(grp_row_ptr + g)
    n_rows = tl.load(grp_row_ptr + g + 1) - r0
    s0 = tl.load(grp_seg_ptr + g)
    s1 = tl.load(grp_seg_ptr + g + 1)
    offs_m = tl.arange(0, BLOCK_M)
    row = offs_m // REP
    head = kvh * REP + offs_m % REP
    rmask = row < n_rows
    tok = tl.load(row_tok + r0 + row, mask=rmask, other=0).to(tl.int64)
    pos = tl.load(row_pos + r0 + row, mask=rmask, other=0)
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < HEAD_DIM
    qt = tl.load(
        q + tok[:, None] * stride_qt + head[:, None] * stride_qh + offs_d[None, :],
        mask=rmask[:, None] & dmask[None, :],
        other=0.0,
    )
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for s in range(s0, s1):
        bt_off = tl.load(seg_bt + s)
        klo = tl.load(seg_klo + s)
        khi = tl.load(seg_khi + s)
        seg_rows = rmask & (row >= tl.load(seg_rlo + s)) & (row < tl.load(seg_rhi + s))
        for kb in range(klo, khi, BLOCK_N):
            keys = kb + tl.arange(0, BLOCK_N)
            kmask = keys < khi
            kt = _kv_tile(k_cache, bt, bt_off, keys, kmask, kvh, stride_ks, stride_kh, offs_d, dmask, BS)
            vt = _kv_tile(v_cache, bt, bt_off, keys, kmask, kvh, stride_ks, stride_kh, offs_d, dmask, BS)
            valid = seg_rows[:, None] & kmask[None, :] & (keys[None, :] <= pos[:, None])
            m_i, l_i, acc = _online_update(qt, kt, vt, valid, m_i, l_i, acc, qk_scale, PREC, UPCAST)
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    o = acc / l_safe[:, None]
    part = tl.load(row_part + r0 + row, mask=rmask, other=-1).to(tl.int64)
    direct = rmask & (part < 0)
    tl.store(
        out + tok[:, None] * stride_ot + head[:, None] * stride_oh + offs_d[None, :],
        o.to(out.dtype.element_ty),
        mask=direct[:, None] & dmask[None, :],
    )
    split = rmask & (part >= 0)
    tl.store(
        part_out + part[:, None] * stride_pp + head[:, None] * stride_ph + offs_d[None, :],
        o,
        mask=split[:, None] & dmask[None, :],
    )
    lse = tl.where(l_i == 0.0, float("-inf"), m_i + tl.log2(l_safe))
    tl.store(part_lse + part * n_q_heads + head, lse, mask=split)


@triton.jit
def _merge_kernel(
    out, part_out, part_lse, merge_ptr, merge_parts, merge_tok,
    stride_ot, stride_oh, stride_pp, stride_ph, n_q_heads,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0)
    h = tl.program_id(1)
    p0 = tl.load(merge_ptr + i)
    p1 = tl.load(merge_ptr + i + 1)
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < HEAD_DIM
    top = tl.full([], float("-inf"), tl.float32)
    for j in range(p0, p1):
        part = tl.load(merge_parts + j).to(tl.int64)
        top = tl.maximum(top, tl.load(part_lse + part * n_q_heads + h))
    acc = tl.zeros([BLOCK_D], tl.float32)
    den = tl.zeros([], tl.float32)
    for j in range(p0, p1):
        part = tl.load(merge_parts + j).to(tl.int64)
        w = tl.exp2(tl.load(part_lse + part * n_q_heads + h) - top)
        acc += w * tl.load(part_out + part * stride_pp + h * stride_ph + offs_d, mask=dmask, other=0.0)
        den += w
    tok = tl.load(merge_tok + i).to(tl.int64)
    tl.store(out + tok * stride_ot + h * stride_oh + offs_d, (acc / den).to(out.dtype.element_ty), mask=dmask)


@triton.jit
def _varlen_kernel(
    q, k_cache, v_cache, out, bt, bt_off, cu_q, kv_lens,
    stride_qt, stride_qh, stride_ks, stride_kh, stride_ot, stride_oh,
    qk_scale, HEAD_DIM: tl.constexpr, REP: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    BS: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0)
    b = tl.program_id(1)
    kvh = tl.program_id(2)
    slots: tl.constexpr = BLOCK_M // REP
    q0 = tl.load(cu_q + b)
    q_len = tl.load(cu_q + b + 1) - q0
    kv_len = tl.load(kv_lens + b)
    off = tl.load(bt_off + b)
    offs_m = tl.arange(0, BLOCK_M)
    row = t * slots + offs_m // REP
    head = kvh * REP + offs_m % REP
    rmask = (offs_m // REP < slots) & (row < q_len)
    pos = kv_len - q_len + row
    tok = (q0 + row).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    dmask = offs_d < HEAD_DIM
    qt = tl.load(
        q + tok[:, None] * stride_qt + head[:, None] * stride_qh + offs_d[None, :],
        mask=rmask[:, None] & dmask[None, :],
        other=0.0,
    )
    # keys up to the tile's last query position; 0 for tiles past the sequence's end
    k_end = tl.where(t * slots < q_len, kv_len - q_len + tl.minimum(q_len, (t + 1) * slots), 0)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for kb in range(0, k_end, BLOCK_N):
        keys = kb + tl.arange(0, BLOCK_N)
        kmask = keys < k_end
        kt = _kv_tile(k_cache, bt, off, keys, kmask, kvh, stride_ks, stride_kh, offs_d, dmask, BS)
        vt = _kv_tile(v_cache, bt, off, keys, kmask, kvh, stride_ks, stride_kh, offs_d, dmask, BS)
        valid = rmask[:, None] & kmask[None, :] & (keys[None, :] <= pos[:, None])
        m_i, l_i, acc = _online_update(qt, kt, vt, valid, m_i, l_i, acc, qk_scale, PREC, UPCAST)
    o = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    tl.store(
        out + tok[:, None] * stride_ot + head[:, None] * stride_oh + offs_d[None, :],
        o.to(out.dtype.element_ty),
        mask=rmask[:, None] & dmask[None, :],
    )


def block_m_for(slots: int, rep: int) -> int:
    """Rows per program: ``slots`` query tokens times ``rep`` heads, a power of two >= 16."""
    return max(16, triton.next_power_of_2(slots * rep))


def _consts(q: torch.Tensor, k_cache: torch.Tensor, scale: float | None) -> dict:
    d = q.shape[-1]
    return {
        "HEAD_DIM": d,
        "REP": q.shape[1] // k_cache.shape[1],
        "BLOCK_D": max(16, triton.next_power_of_2(d)),
        "PREC": "ieee" if q.dtype == torch.float32 else "tf32",
        # Triton's interpreter multiplies bf16 bit patterns as integers: compute those tiles in fp32 there
        "UPCAST": q.dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1",
        "qk_scale": (scale if scale is not None else 1.0 / math.sqrt(d)) * LOG2E,
    }


def _check(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> None:
    if q.dim() != 3 or k_cache.dim() != 3 or k_cache.shape != v_cache.shape:
        raise ValueError("expected q [T, Hq, D] and caches [slots, Hkv, D] of one shape")
    if q.shape[1] % k_cache.shape[1] or q.shape[2] != k_cache.shape[2]:
        raise ValueError(f"heads/dims do not match: q {tuple(q.shape)}, cache {tuple(k_cache.shape)}")
    if q.stride(-1) != 1 or k_cache.stride(-1) != 1 or v_cache.stride() != k_cache.stride():
        raise ValueError("the last dimension must be contiguous and both caches strided alike")


def packed_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    tables: PackedTables,
    block_size: int,
    scale: float | None = None,
    block_n: int = BLOCK_N,
    num_warps: int = 4,
) -> torch.Tensor:
    """PackInfer attention for the plan in ``tables``: q [T, Hq, D] -> [T, Hq, D]."""
    _check(q, k_cache, v_cache)
    c = _consts(q, k_cache, scale)
    out = torch.empty_like(q)
    hq = q.shape[1]
    parts = max(1, tables.num_parts)
    part_out = torch.empty(parts, hq, q.shape[2], dtype=torch.float32, device=q.device)
    part_lse = torch.empty(parts, hq, dtype=torch.float32, device=q.device)
    block_m = block_m_for(tables.plan.slots, c["REP"])
    _packed_kernel[(tables.num_groups, k_cache.shape[1])](
        q, k_cache, v_cache, out, part_out, part_lse, tables.bt_flat,
        tables.grp_row_ptr, tables.grp_seg_ptr, tables.row_tok, tables.row_pos, tables.row_part,
        tables.seg_bt, tables.seg_klo, tables.seg_khi, tables.seg_rlo, tables.seg_rhi,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1),
        out.stride(0), out.stride(1), part_out.stride(0), part_out.stride(1),
        c["qk_scale"], hq, HEAD_DIM=c["HEAD_DIM"], REP=c["REP"],
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=c["BLOCK_D"], BS=block_size, PREC=c["PREC"], UPCAST=c["UPCAST"],
        num_warps=num_warps,
    )  # fmt: skip
    if tables.num_parts:
        _merge_kernel[(tables.merge_tok.numel(), hq)](
            out, part_out, part_lse, tables.merge_ptr, tables.merge_parts, tables.merge_tok,
            out.stride(0), out.stride(1), part_out.stride(0), part_out.stride(1), hq,
            HEAD_DIM=c["HEAD_DIM"], BLOCK_D=c["BLOCK_D"],
        )  # fmt: skip
    return out


class VarlenTables:
    """Device tensors of the varlen layout (cu_seqlens, key lengths, block tables)."""

    def __init__(self, batch: AttnBatch, device: torch.device | str) -> None:
        self.cu_q = torch.tensor(batch.cu_q, dtype=torch.int32, device=device)
        self.kv_lens = torch.tensor(list(batch.kv_lens), dtype=torch.int32, device=device)
        self.bt_flat, self.bt_off = batch.block_table_tensors(device)
        self.num_seqs = batch.num_seqs
        self.max_q = max(batch.q_lens)

    def advance(self) -> None:
        """Account one decode step: every sequence gains a key."""
        self.kv_lens += 1


def varlen_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    tables: VarlenTables,
    block_size: int,
    scale: float | None = None,
    block_m: int = 64,
    block_n: int = BLOCK_N,
    num_warps: int = 4,
) -> torch.Tensor:
    """Unpacked varlen attention (one program per query tile per sequence)."""
    _check(q, k_cache, v_cache)
    c = _consts(q, k_cache, scale)
    out = torch.empty_like(q)
    block_m = max(block_m, block_m_for(1, c["REP"]))
    slots = block_m // c["REP"]
    grid = (triton.cdiv(tables.max_q, slots), tables.num_seqs, k_cache.shape[1])
    _varlen_kernel[grid](
        q, k_cache, v_cache, out, tables.bt_flat, tables.bt_off, tables.cu_q, tables.kv_lens,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), out.stride(0), out.stride(1),
        c["qk_scale"], HEAD_DIM=c["HEAD_DIM"], REP=c["REP"],
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=c["BLOCK_D"], BS=block_size, PREC=c["PREC"], UPCAST=c["UPCAST"],
        num_warps=num_warps,
    )  # fmt: skip
    return out
