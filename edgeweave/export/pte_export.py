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

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.export import Dim

from edgeweave.fileio import atomic_output
from edgeweave.models.llama import Transformer

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
    """One sequence's K/V buffers [1, ctx, Hkv, D] behind ExecuTorch's LLM kernels; the same
    store-and-attend contract as :class:`edgeweave.models.llama.KVCache` with one slot and
    consecutive positions.  ``custom_sdpa`` handles grouped-query heads itself."""

    def __init__(self, n_kv_heads: int, ctx: int, head_dim: int) -> None:
        super().__init__()
        shape = (1, ctx, n_kv_heads, head_dim)
        self.register_buffer("k", torch.zeros(shape), persistent=False)
        self.register_buffer("v", torch.zeros(shape), persistent=False)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        input_pos: torch.Tensor,
        slots: torch.Tensor | None,
    ) -> torch.Tensor:
        start = input_pos[0].item()
        torch._check_is_size(start)
        torch._check(start + q.shape[1] <= self.k.shape[1])
        torch.ops.llama.update_cache(k, self.k, start)
        torch.ops.llama.update_cache(v, self.v, start)
        return torch.ops.llama.custom_sdpa(q, self.k, self.v, start, None, 0.0, True)


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
    cfg = model.config
    ctx = cfg.max_seq_len
    model = model.float().eval()
    model.cache_len = ctx
    for layer in model.model.layers:
        layer.self_attn.cache = ExecuTorchKVCache(cfg.n_kv_heads, ctx, cfg.head_dim)
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
