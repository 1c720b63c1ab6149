"""The fused multi-LoRA kernel (tLoRA, arXiv 2602.07263; Punica's SGMV, S-LoRA's MBGMM): a
segmented gather matmul over a batch whose row segments use different adapters of different ranks.

Nothing is padded to the largest rank.  The adapters a batch uses are packed side by side:
``A_cat [R, in]`` (adapter ``u``'s rows at ``roff[u] : roff[u] + r_u``, ``R = sum r_u``) and
``B_cat [out, R]``.  The intermediate is one flat buffer: segment ``s`` (``n_s`` rows, adapter
rank ``r_s``) owns ``n_s * r_s`` values at ``hoff[s]``, row-major, so it holds exactly
``sum_s n_s r_s`` values (a ``[T, r_max]`` buffer would spend ``T (r_max - r)`` on every row of a
low-rank adapter beside a rank-64 one).  Three kernels do all of forward and backward:

- ``_shrink_kernel``: ``h_s = c_s * X[rows_s] @ W_s.T`` into the flat buffer, one program per
  (segment, row block, rank block) tile;  forward ``h = x A^T`` and backward ``dh = s dy B``;
- ``_expand_kernel``: ``Y[rows_s] = c_s * h_s @ W_s.T`` from the flat buffer, one program per
  (segment, row block) tile and output block;  forward ``y = s h B^T`` and backward ``dx = dh A``;
- ``_outer_kernel``: ``G_u = c_u * sum over u's segments of h_s.T @ D[rows_s]``, one program per
  (adapter, rank block) tile and dense block, walking that adapter's segments wherever they lie
  in the batch;  ``dA_u = dh^T x`` and ``dB_u = s (dy^T h)^T``.

Rows of segments without an adapter are never read or written (their delta and dx are 0).
Accumulators are fp32; fp32 inputs use IEEE dots (``input_precision="ieee"``, not TF32).
:func:`kernels.multi_lora.lora_delta_reference` is the pure-torch reference beside it; under
``TRITON_INTERPRET=1`` the kernels run on CPU tensors (the tests).  Our choices where the papers
are silent: the tile tables, the flat intermediate, saving ``h`` for the backward (it is
``sum n_s r_s`` values, cheaper than recomputing the shrink) and the block sizes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from kernels.multi_lora import NO_ADAPTER, LoraWeights, Segments, _out_features, _runs

BLOCK_M = 32  # rows per tile
BLOCK_R = 16  # rank columns per tile (tl.dot's smallest; a rank-4 adapter masks 12 of them)
BLOCK_K = 64  # the dense dimension (in or out) per step / per output block


@triton.jit
def _shrink_kernel(
    x, w, h, tile_seg, tile_m0, tile_r0, seg_lo, seg_rows, seg_rank, seg_roff, seg_hoff, seg_scale,
    K, stride_xt, stride_xk, stride_wr, stride_wk,
    SCALE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
    PREC: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    tile = tl.program_id(0)
    s = tl.load(tile_seg + tile)
    m0 = tl.load(tile_m0 + tile)
    r0 = tl.load(tile_r0 + tile)
    rows = tl.load(seg_rows + s)
    rank = tl.load(seg_rank + s)
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_r = r0 + tl.arange(0, BLOCK_R)
    mmask = offs_m < rows
    rmask = offs_r < rank
    xrow = (tl.load(seg_lo + s) + offs_m).to(tl.int64)
    wrow = (tl.load(seg_roff + s) + offs_r).to(tl.int64)
    acc = tl.zeros([BLOCK_M, BLOCK_R], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        kmask = offs_k < K
        xt = tl.load(
            x + xrow[:, None] * stride_xt + offs_k[None, :] * stride_xk, mask=mmask[:, None] & kmask[None, :], other=0.0
        )
        wt = tl.load(
            w + wrow[:, None] * stride_wr + offs_k[None, :] * stride_wk, mask=rmask[:, None] & kmask[None, :], other=0.0
        )
        if UPCAST:
            xt, wt = xt.to(tl.float32), wt.to(tl.float32)
        acc += tl.dot(xt, tl.trans(wt), input_precision=PREC)
    if SCALE:
        acc *= tl.load(seg_scale + s)
    dst = tl.load(seg_hoff + s).to(tl.int64) + offs_m[:, None].to(tl.int64) * rank + offs_r[None, :]
    tl.store(h + dst, acc.to(h.dtype.element_ty), mask=mmask[:, None] & rmask[None, :])


@triton.jit
def _expand_kernel(
    h, w, y, tile_seg, tile_m0, seg_lo, seg_rows, seg_rank, seg_roff, seg_hoff, seg_scale,
    N, stride_wn, stride_wr, stride_yt, stride_yn,
    SCALE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr,
    PREC: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    tile = tl.program_id(0)
    nb = tl.program_id(1)
    s = tl.load(tile_seg + tile)
    m0 = tl.load(tile_m0 + tile)
    rows = tl.load(seg_rows + s)
    rank = tl.load(seg_rank + s)
    roff = tl.load(seg_roff + s)
    hoff = tl.load(seg_hoff + s).to(tl.int64)
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_n = nb * BLOCK_N + tl.arange(0, BLOCK_N)
    mmask = offs_m < rows
    nmask = offs_n < N
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for r0 in range(0, rank, BLOCK_R):
        offs_r = r0 + tl.arange(0, BLOCK_R)
        rmask = offs_r < rank
        ht = tl.load(
            h + hoff + offs_m[:, None].to(tl.int64) * rank + offs_r[None, :],
            mask=mmask[:, None] & rmask[None, :],
            other=0.0,
        )
        wt = tl.load(
            w + offs_n[:, None].to(tl.int64) * stride_wn + (roff + offs_r)[None, :].to(tl.int64) * stride_wr,
            mask=nmask[:, None] & rmask[None, :],
            other=0.0,
        )
        if UPCAST:
            ht, wt = ht.to(tl.float32), wt.to(tl.float32)
        acc += tl.dot(ht, tl.trans(wt), input_precision=PREC)
    if SCALE:
        acc *= tl.load(seg_scale + s)
    yrow = (tl.load(seg_lo + s) + offs_m).to(tl.int64)
    tl.store(
        y + yrow[:, None] * stride_yt + offs_n[None, :] * stride_yn,
        acc.to(y.dtype.element_ty),
        mask=mmask[:, None] & nmask[None, :],
    )


@triton.jit
def _outer_kernel(
    h, d, g, tile_ad, tile_r0, ad_ptr, ad_seg, ad_rank, ad_roff, ad_scale,
    seg_lo, seg_rows, seg_hoff,
    D, stride_dt, stride_dd, stride_gr, stride_gd,
    SCALE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
    PREC: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    tile = tl.program_id(0)
    db = tl.program_id(1)
    u = tl.load(tile_ad + tile)
    r0 = tl.load(tile_r0 + tile)
    rank = tl.load(ad_rank + u)
    offs_r = r0 + tl.arange(0, BLOCK_R)
    offs_d = db * BLOCK_D + tl.arange(0, BLOCK_D)
    rmask = offs_r < rank
    dmask = offs_d < D
    acc = tl.zeros([BLOCK_R, BLOCK_D], tl.float32)
    for i in range(tl.load(ad_ptr + u), tl.load(ad_ptr + u + 1)):
        s = tl.load(ad_seg + i)
        lo = tl.load(seg_lo + s)
        rows = tl.load(seg_rows + s)
        hoff = tl.load(seg_hoff + s).to(tl.int64)
        for m0 in range(0, rows, BLOCK_M):
            offs_m = m0 + tl.arange(0, BLOCK_M)
            mmask = offs_m < rows
            ht = tl.load(
                h + hoff + offs_m[:, None].to(tl.int64) * rank + offs_r[None, :],
                mask=mmask[:, None] & rmask[None, :],
                other=0.0,
            )
            dt = tl.load(
                d + (lo + offs_m)[:, None].to(tl.int64) * stride_dt + offs_d[None, :] * stride_dd,
                mask=mmask[:, None] & dmask[None, :],
                other=0.0,
            )
            if UPCAST:
                ht, dt = ht.to(tl.float32), dt.to(tl.float32)
            acc += tl.dot(tl.trans(ht), dt, input_precision=PREC)
    if SCALE:
        acc *= tl.load(ad_scale + u)
    grow = (tl.load(ad_roff + u) + offs_r).to(tl.int64)
    tl.store(
        g + grow[:, None] * stride_gr + offs_d[None, :] * stride_gd,
        acc.to(g.dtype.element_ty),
        mask=rmask[:, None] & dmask[None, :],
    )


@dataclass(frozen=True)
class LoraTables:
    """The device tables one batch's kernels read.  Used adapters ``u`` (distinct, in order of
    first appearance) map to positions in ``A_cat``/``B_cat``; kept segments ``s`` are the
    non-empty ones with an adapter."""

    used: tuple[int, ...]  # adapter list index of each used adapter u
    ranks: tuple[int, ...]  # r_u
    seg_lo: torch.Tensor
    seg_rows: torch.Tensor
    seg_rank: torch.Tensor
    seg_roff: torch.Tensor
    seg_hoff: torch.Tensor
    seg_scale: torch.Tensor
    flat: int  # values in the flat intermediate: sum_s n_s r_s
    row_tiles: torch.Tensor  # [2, n]: (segment, first row) per row block
    rank_tiles: torch.Tensor  # [3, n]: (segment, first row, first rank column)
    ad_ptr: torch.Tensor  # CSR: adapter u's segments are ad_seg[ad_ptr[u]:ad_ptr[u+1]]
    ad_seg: torch.Tensor
    ad_rank: torch.Tensor
    ad_roff: torch.Tensor
    ad_scale: torch.Tensor
    ad_tiles: torch.Tensor  # [2, n]: (adapter, first rank column)

    @classmethod
    def build(cls, segments: Segments, adapters: Sequence[LoraWeights | None], device: torch.device) -> LoraTables:
        runs = [(lo, hi, idx) for lo, hi, idx in _runs(segments, adapters) if idx != NO_ADAPTER]
        used = tuple(dict.fromkeys(idx for _, _, idx in runs))
        pos = {idx: u for u, idx in enumerate(used)}
        ranks = tuple(adapters[idx].a.shape[0] for idx in used)  # type: ignore[union-attr]
        roffs = [sum(ranks[:u]) for u in range(len(used))]
        scales = [adapters[idx].scaling for idx in used]  # type: ignore[union-attr]
        seg_u = [pos[idx] for _, _, idx in runs]
        seg_rows = [hi - lo for lo, hi, _ in runs]
        seg_rank = [ranks[u] for u in seg_u]
        hoff = [0]
        for n, r in zip(seg_rows, seg_rank, strict=True):
            hoff.append(hoff[-1] + n * r)
        row_tiles = [(s, m0) for s, n in enumerate(seg_rows) for m0 in range(0, n, BLOCK_M)]
        rank_tiles = [(s, m0, r0) for s, m0 in row_tiles for r0 in range(0, seg_rank[s], BLOCK_R)]
        ad_seg = [s for u in range(len(used)) for s, su in enumerate(seg_u) if su == u]
        ad_ptr = [0]
        for u in range(len(used)):
            ad_ptr.append(ad_ptr[-1] + seg_u.count(u))
        ad_tiles = [(u, r0) for u, r in enumerate(ranks) for r0 in range(0, r, BLOCK_R)]

        def ints(v: Sequence[Any]) -> torch.Tensor:
            return torch.tensor(v, dtype=torch.int32, device=device)

        def floats(v: Sequence[float]) -> torch.Tensor:
            return torch.tensor(v, dtype=torch.float32, device=device)

        return cls(
            used=used, ranks=ranks,
            seg_lo=ints([lo for lo, _, _ in runs]), seg_rows=ints(seg_rows), seg_rank=ints(seg_rank),
            seg_roff=ints([roffs[u] for u in seg_u]), seg_hoff=ints(hoff[:-1]),
            seg_scale=floats([scales[u] for u in seg_u]), flat=hoff[-1],
            row_tiles=ints(row_tiles).reshape(-1, 2).t().contiguous(),
            rank_tiles=ints(rank_tiles).reshape(-1, 3).t().contiguous(),
            ad_ptr=ints(ad_ptr), ad_seg=ints(ad_seg), ad_rank=ints(ranks), ad_roff=ints(roffs),
            ad_scale=floats(scales), ad_tiles=ints(ad_tiles).reshape(-1, 2).t().contiguous(),
        )  # fmt: skip


def _consts(dtype: torch.dtype) -> dict[str, Any]:
    return {
        "PREC": "ieee" if dtype == torch.float32 else "tf32",
        # Triton's interpreter multiplies bf16 bit patterns as integers: compute those tiles in fp32 there
        "UPCAST": dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1",
    }


def shrink(x: torch.Tensor, w: torch.Tensor, t: LoraTables, scale: bool) -> torch.Tensor:
    """Flat ``h``: segment s's rows of ``x [T, K]`` times ``w[roff_s : roff_s + r_s, :].T``
    (``w`` any [R, K] view), times its scaling if ``scale``."""
    h = x.new_empty(t.flat)
    n = t.rank_tiles.shape[1]
    if n:
        _shrink_kernel[(n,)](
            x, w, h, t.rank_tiles[0], t.rank_tiles[1], t.rank_tiles[2],
            t.seg_lo, t.seg_rows, t.seg_rank, t.seg_roff, t.seg_hoff, t.seg_scale,
            x.shape[1], x.stride(0), x.stride(1), w.stride(0), w.stride(1),
            SCALE=scale, BLOCK_M=BLOCK_M, BLOCK_R=BLOCK_R, BLOCK_K=BLOCK_K, **_consts(x.dtype),
        )  # fmt: skip
    return h


def expand(h: torch.Tensor, w: torch.Tensor, t: LoraTables, rows: int, scale: bool) -> torch.Tensor:
    """``Y [rows, N]``: segment s's rows are ``h_s @ w[:, roff_s : roff_s + r_s].T`` (``w`` any
    [N, R] view), times its scaling if ``scale``; rows of no segment are 0."""
    y = h.new_zeros(rows, w.shape[0])
    n = t.row_tiles.shape[1]
    if n:
        _expand_kernel[(n, triton.cdiv(w.shape[0], BLOCK_K))](
            h, w, y, t.row_tiles[0], t.row_tiles[1],
            t.seg_lo, t.seg_rows, t.seg_rank, t.seg_roff, t.seg_hoff, t.seg_scale,
            w.shape[0], w.stride(0), w.stride(1), y.stride(0), y.stride(1),
            SCALE=scale, BLOCK_M=BLOCK_M, BLOCK_R=BLOCK_R, BLOCK_N=BLOCK_K, **_consts(h.dtype),
        )  # fmt: skip
    return y


def outer(h: torch.Tensor, d: torch.Tensor, g: torch.Tensor, t: LoraTables, scale: bool) -> torch.Tensor:
    """Into ``g`` (any [R, D] view): rows ``roff_u : roff_u + r_u`` get the sum over adapter u's
    segments of ``h_s.T @ d[rows_s]``, times u's scaling if ``scale``."""
    n = t.ad_tiles.shape[1]
    if n:
        _outer_kernel[(n, triton.cdiv(d.shape[1], BLOCK_K))](
            h, d, g, t.ad_tiles[0], t.ad_tiles[1], t.ad_ptr, t.ad_seg, t.ad_rank, t.ad_roff, t.ad_scale,
            t.seg_lo, t.seg_rows, t.seg_hoff,
            d.shape[1], d.stride(0), d.stride(1), g.stride(0), g.stride(1),
            SCALE=scale, BLOCK_M=BLOCK_M, BLOCK_R=BLOCK_R, BLOCK_D=BLOCK_K, **_consts(h.dtype),
        )  # fmt: skip
    return g


class _SegmentedLora(torch.autograd.Function):
    """y = s_u x A_u^T B_u^T per segment; inputs (x, tables, A_0..A_{n-1}, B_0..B_{n-1})."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, t: LoraTables, *weights: torch.Tensor) -> torch.Tensor:
        n = len(t.used)
        a_cat = torch.cat([a.to(x.dtype) for a in weights[:n]]).contiguous()  # [R, in]
        b_cat = torch.cat([b.to(x.dtype) for b in weights[n:]], dim=1).contiguous()  # [out, R]
        h = shrink(x, a_cat, t, scale=False)
        ctx.save_for_backward(x, a_cat, b_cat, h)
        ctx.tables = t
        ctx.weight_dtypes = [w.dtype for w in weights]
        return expand(h, b_cat, t, x.shape[0], scale=True)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, a_cat, b_cat, h = ctx.saved_tensors
        t: LoraTables = ctx.tables
        dy = dy.contiguous()
        dh = shrink(dy, b_cat.t(), t, scale=True)  # s dy B, flat
        dx = expand(dh, a_cat.t(), t, x.shape[0], scale=False) if ctx.needs_input_grad[0] else None
        if not any(ctx.needs_input_grad[2:]):
            return (dx, None, *[None] * len(ctx.weight_dtypes))
        # every row of A_cat and column of B_cat belongs to one used adapter's tiles: no zero fill
        da = outer(dh, x, torch.empty_like(a_cat), t, scale=False)  # dh^T x: [R, in]
        db = outer(h, dy, torch.empty_like(b_cat).t(), t, scale=True).t()  # s (h^T dy)^T: [out, R]
        parts = [*da.split(list(t.ranks)), *db.split(list(t.ranks), dim=1)]
        return (dx, None, *[g.to(dt) for g, dt in zip(parts, ctx.weight_dtypes, strict=True)])


def lora_delta_triton(x: torch.Tensor, segments: Segments, adapters: Sequence[LoraWeights | None]) -> torch.Tensor:
    """The multi-LoRA delta of ``x [T, in]`` by the fused kernels, differentiable in ``x`` and in
    the A/B of every adapter a non-empty segment uses."""
    out_features = _out_features(segments, adapters, x)
    if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            "lora_delta: impl 'triton' needs CUDA tensors, or TRITON_INTERPRET=1 set before triton is imported"
        )
    t = LoraTables.build(segments, adapters, x.device)
    if not t.used:
        return x.new_zeros(x.shape[0], out_features)
    ws = [adapters[i] for i in t.used]
    return _SegmentedLora.apply(x, t, *[w.a for w in ws], *[w.b for w in ws])  # type: ignore[union-attr]
