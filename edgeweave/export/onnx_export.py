"""Export a checkpoint to ONNX: the stateless forward ``tokens[1, T] -> logits[1, T, vocab]``.

Uses torch's TorchScript-based exporter (``dynamo=False``) with a dynamic
sequence axis: the dynamo exporter needs ``onnxscript``, which torch does not
install (STACK.md).  onnxruntime runs the result for logits-parity checks.
"""

from __future__ import annotations

from pathlib import Path

import torch

from edgeweave.fileio import atomic_output
from edgeweave.models.llama import Transformer

OPSET = 17


def export_onnx(model: Transformer, out: Path) -> Path:
    model = model.float().eval()
    example = torch.zeros(1, 8, dtype=torch.long)
    with atomic_output(out) as tmp, torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["tokens"],
            output_names=["logits"],
            dynamic_axes={"tokens": {1: "T"}, "logits": {1: "T"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return out
