"""Export a checkpoint to an ExecuTorch program (.pte) with an incremental KV cache.

The exported graph is :class:`~edgeweave.models.llama.Transformer` in cached
mode: ``forward(tokens[1, T], input_pos[T]) -> logits[1, T, vocab]`` with K/V
buffers mutated in place, a dynamic sequence dimension (prefill any chunk of
1..context tokens, then decode one token per call) and the linear layers
lowered to XNNPACK.  Mutable buffers are not serialized with initial values:
every sequence must write its positions from 0 (the backend always prefills
from position 0).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.export import Dim

from edgeweave.fileio import atomic_output
from edgeweave.models.llama import Transformer

# What ExecuTorch's import and export print that no user can act on: torchao's CUDA-only
# kernels failing to load on a CPU machine, torch deprecations raised inside torch.export
# and torchao, and the mutable-buffer note (the KV cache: see above, sequences write from 0).
_QUIET_LOGGERS = ("torchao", "torch.utils._pytree")
_QUIET_WARNINGS = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    (UserWarning, r"Mutation on a buffer in the model is detected"),
)


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


def export_pte(model: Transformer, out: Path) -> Path:
    ctx = model.config.max_seq_len
    model = model.float().eval()
    model.setup_cache(ctx)
    seq = Dim("T", min=1, max=ctx)
    example = (torch.zeros(1, 4, dtype=torch.long), torch.arange(4, dtype=torch.long))
    with _library_notes_silenced(), torch.set_grad_enabled(False):
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        program = torch.export.export(model, example, dynamic_shapes=({1: seq}, {0: seq}))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        executorch_program = lowered.to_executorch()
    with atomic_output(out) as tmp:
        tmp.write_bytes(executorch_program.buffer)
    return out
