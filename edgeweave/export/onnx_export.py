"""Export a checkpoint to ONNX: the stateless forward ``tokens[1, T] -> logits[1, T, vocab]``, or a
traffic CNN's ``frames[B, 3, H, W] -> logits[B, classes]``.

Uses torch's TorchScript-based exporter (``dynamo=False``) with a dynamic
sequence axis: the dynamo exporter needs ``onnxscript``, which torch does not
install (STACK.md).  onnxruntime runs the result for logits-parity checks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgeweave.fileio import atomic_output
from edgeweave.models.llama import Transformer
from edgeweave.models.vision import TrafficCNN

OPSET = 17


def export_onnx(model: Transformer, out: Path) -> Path:
    example = torch.zeros(1, 8, dtype=torch.long)
    return _export(model, example, ("tokens", "logits"), {"tokens": {1: "T"}, "logits": {1: "T"}}, out)


def export_cnn_onnx(model: TrafficCNN, out: Path) -> Path:
    """A traffic CNN: ``frames[B, 3, H, W] -> logits[B, classes]``, batch axis dynamic."""
    size = model.config.image_size
    example = torch.zeros(1, 3, size, size)
    return _export(model, example, ("frames", "logits"), {"frames": {0: "B"}, "logits": {0: "B"}}, out)


def _export(model: nn.Module, example: torch.Tensor, names: tuple[str, str],
            axes: dict[str, dict[int, str]], out: Path) -> Path:  # fmt: skip
    model = model.float().eval()
    with atomic_output(out) as tmp, torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=[names[0]],
            output_names=[names[1]],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return out
