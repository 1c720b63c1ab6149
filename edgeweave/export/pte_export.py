"""Export a checkpoint to an ExecuTorch program (.pte) with an incremental KV cache.

The exported graph is :class:`~edgeweave.models.llama.Transformer` in cached
mode: ``forward(tokens[1, T], input_pos[T]) -> logits[1, T, vocab]`` with a
dynamic sequence dimension (prefill any chunk of 1..context tokens, then decode
one token per call).  ``input_pos`` holds consecutive positions; the program
reads the first.  The linear layers are lowered to XNNPACK; each layer's KV
cache is swapped for :class:`ExecuTorchKVCache`, built on the KV-cache and SDPA
kernels ExecuTorch ships for its own LLM exports
(``executorch.extension.llm.custom_ops``): ``llama::update_cache`` writes the
new K/V in place and ``llama::custom_sdpa`` attends only over the positions
written so far, so a decode step costs what its position needs rather than the
whole cache (the mask-over-every-slot graph walked all of it in portable ops,
~10x slower than llama.cpp).  Mutable buffers are not serialized with initial
values: every sequence must write its positions from 0 (the backend always
prefills from position 0).  A program that uses these kernels needs them
registered in the runtime that loads it: :func:`register_llm_kernels`.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.export import Dim

from edgeweave.fileio import atomic_output
from edgeweave.models.llama import Attention, RMSNorm, Transformer, rotate_half

# What ExecuTorch's import and export print that no user can act on: torchao's CUDA-only
# kernels failing to load on a CPU machine, torch deprecations raised inside torch.export
# and torchao, the custom-op library's loading notes, and the mutable-buffer note (the
# KV cache: see above, sequences write from 0).
_QUIET_LOGGERS = ("torchao", "torch.utils._pytree", "torch.fx.experimental.symbolic_shapes")
_QUIET_WARNINGS = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    (UserWarning, r"Mutation on a buffer in the model is detected"),
    (FutureWarning, r"_check_is_size will be removed"),
)


class ExecuTorchKVCache(nn.Module):
    """One sequence's K/V buffers [1, ctx, Hkv, D] behind ExecuTorch's LLM kernels: store the
    new K/V at the first of ``input_pos`` (consecutive positions) and attend over the
    positions written so far.  ``custom_sdpa`` handles grouped-query heads itself."""

    def __init__(self, n_kv_heads: int, ctx: int, head_dim: int) -> None:
        super().__init__()
        shape = (1, ctx, n_kv_heads, head_dim)
        self.register_buffer("k", torch.zeros(shape), persistent=False)
        self.register_buffer("v", torch.zeros(shape), persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        """q: [1, T, Hq, D]; k, v: [1, T, Hkv, D] -> [1, T, Hq, D]."""
        start = input_pos[0].item()
        torch._check_is_size(start)
        torch._check(start + q.shape[1] <= self.k.shape[1])
        torch.ops.llama.update_cache(k, self.k, start)
        torch.ops.llama.update_cache(v, self.v, start)
        return torch.ops.llama.custom_sdpa(q, self.k, self.v, start, None, 0.0, True)


def _rotated(proj: nn.Linear, n_heads: int, head_dim: int) -> nn.Linear:
    """A projection whose output is ``rotate_half`` of ``proj``'s, head by head: its rows
    permuted and negated (exact), so RoPE needs no slicing of activations."""
    out = nn.Linear(proj.in_features, proj.out_features, bias=proj.bias is not None)
    with torch.no_grad():
        w = proj.weight.view(n_heads, head_dim, -1).transpose(1, 2)  # [H, in, D]
        out.weight.copy_(rotate_half(w).transpose(1, 2).reshape_as(proj.weight))
        if proj.bias is not None:
            out.bias.copy_(rotate_half(proj.bias.view(n_heads, head_dim)).reshape(-1))
    return out


class ExportedAttention(nn.Module):
    """:class:`~edgeweave.models.llama.Attention` as exported, same weights and numbers.

    RoPE runs on the flat projections ([B, T, H*D], tables tiled over heads) with the
    rotated half from :func:`_rotated`, and the cache is :class:`ExecuTorchKVCache`:
    between two layers' attention kernels every op (norms, projections, RoPE, MLP)
    is one that XNNPACK takes, so each layer is one delegate call plus the two
    cache kernels, instead of several delegate calls split by portable slices."""

    def __init__(self, attn: Attention, ctx: int) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = attn.n_heads, attn.n_kv_heads, attn.head_dim
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj
        self.q_rot = _rotated(attn.q_proj, attn.n_heads, attn.head_dim)
        self.k_rot = _rotated(attn.k_proj, attn.n_kv_heads, attn.head_dim)
        self.cache = ExecuTorchKVCache(attn.n_kv_heads, ctx, attn.head_dim)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        input_pos: torch.Tensor,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """cos/sin: [T, Hq*D], the tables tiled over the query heads (:func:`as_exported`)."""
        b, t, _ = x.shape
        kv = self.n_kv_heads * self.head_dim
        q = self.q_proj(x) * cos + self.q_rot(x) * sin
        k = self.k_proj(x) * cos[:, :kv] + self.k_rot(x) * sin[:, :kv]
        v = self.v_proj(x)
        out = self.cache(
            q.view(b, t, self.n_heads, self.head_dim),
            k.view(b, t, self.n_kv_heads, self.head_dim),
            v.view(b, t, self.n_kv_heads, self.head_dim),
            input_pos,
        )
        return self.o_proj(out.reshape(b, t, self.n_heads * self.head_dim))


class ExportedRMSNorm(nn.Module):
    """:class:`~edgeweave.models.llama.RMSNorm` with its mean of squares as a 1-row linear
    (which XNNPACK takes; its mean op over the last dim it does not)."""

    def __init__(self, norm: RMSNorm) -> None:
        super().__init__()
        self.eps, self.weight = norm.eps, norm.weight
        dim = norm.weight.shape[0]
        self.register_buffer("mean_row", torch.full((1, dim), 1.0 / dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(F.linear(x * x, self.mean_row) + self.eps))


def as_exported(model: Transformer) -> Transformer:
    """A float32 copy of ``model`` with the export's attention and norms swapped in, for
    cached mode only: its RoPE tables are tiled over the query heads, once for all layers."""
    exported = copy.deepcopy(model).float().eval()
    ctx = exported.config.max_seq_len
    exported.cache_len = ctx
    heads = exported.config.n_heads
    exported.rope_cos, exported.rope_sin = exported.rope_cos.repeat(1, heads), exported.rope_sin.repeat(1, heads)
    backbone = exported.model
    for layer in backbone.layers:
        layer.self_attn = ExportedAttention(layer.self_attn, ctx)
        layer.input_layernorm = ExportedRMSNorm(layer.input_layernorm)
        layer.post_attention_layernorm = ExportedRMSNorm(layer.post_attention_layernorm)
    backbone.norm = ExportedRMSNorm(backbone.norm)
    return exported


@contextmanager
def _library_notes_silenced() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category, message in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def register_llm_kernels() -> None:
    """Register ExecuTorch's LLM ops (``torch.ops.llama.*``) for export and their kernels in
    the runtime: the wheel's ``custom_ops`` module loads ``libcustom_ops_aot_lib``, which
    registers both the torch operators and the ExecuTorch kernels of the shared runtime."""
    with _library_notes_silenced():
        import executorch.extension.llm.custom_ops.custom_ops  # noqa: F401


def export_pte(model: Transformer, out: Path) -> Path:
    ctx = model.config.max_seq_len
    model = as_exported(model)
    seq = Dim("T", min=1, max=ctx)
    example = (torch.zeros(1, 4, dtype=torch.long), torch.arange(4, dtype=torch.long))
    with _library_notes_silenced(), torch.set_grad_enabled(False):
        register_llm_kernels()
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        program = torch.export.export(model, example, dynamic_shapes=({1: seq}, {0: seq}))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        executorch_program = lowered.to_executorch()
    with atomic_output(out) as tmp:
        tmp.write_bytes(executorch_program.buffer)
    return out
