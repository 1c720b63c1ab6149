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

from pathlib import Path

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.exir import to_edge_transform_and_lower
from torch.export import Dim

from edgeweave.fileio import atomic_output
from edgeweave.models.llama import Transformer


def export_pte(model: Transformer, out: Path) -> Path:
    ctx = model.config.max_seq_len
    model = model.float().eval()
    model.setup_cache(ctx)
    seq = Dim("T", min=1, max=ctx)
    example = (torch.zeros(1, 4, dtype=torch.long), torch.arange(4, dtype=torch.long))
    with torch.set_grad_enabled(False):
        program = torch.export.export(model, example, dynamic_shapes=({1: seq}, {0: seq}))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        executorch_program = lowered.to_executorch()
    with atomic_output(out) as tmp:
        tmp.write_bytes(executorch_program.buffer)
    return out
