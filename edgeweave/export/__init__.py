"""Exporters from a checkpoint directory to every runtime edgeweave serves.

``export_model(checkpoint, target, out)`` with target ``gguf`` (llama.cpp),
``pte`` (ExecuTorch), ``onnx`` (onnxruntime) or ``safetensors`` (a Hugging
Face checkpoint directory, tokenizer files included); a traffic CNN exports
to ``onnx``.  ``dtype`` f16 applies to gguf and safetensors; the other
targets are float32 graphs and refuse it.  Real Hugging Face Llama / Qwen2
checkpoints go through exactly the same path as the weave-home models.  Outputs are written
atomically: a failed export leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from edgeweave.errors import UsageError

ExportTarget = Literal["gguf", "pte", "onnx", "safetensors"]
EXPORT_TARGETS: tuple[str, ...] = get_args(ExportTarget)
DTYPES = ("f32", "f16")
F16_TARGETS = ("gguf", "safetensors")  # pte and onnx export float32 graphs only


def export_model(checkpoint: str | Path, target: str, out: str | Path, dtype: str = "f32") -> Path:
    if target not in EXPORT_TARGETS:
        raise UsageError("--to", f"unknown export target {target!r} (choose from {', '.join(EXPORT_TARGETS)})")
    if dtype not in DTYPES:
        raise UsageError("--dtype", f"unknown dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    if dtype != "f32" and target not in F16_TARGETS:
        raise UsageError("--dtype", f"{target} exports f32 only ({dtype} is for {' and '.join(F16_TARGETS)})")
    from edgeweave.models.checkpoint import load_checkpoint
    from edgeweave.models.vision import is_vision_checkpoint, load_cnn

    checkpoint, out = Path(checkpoint), Path(out)
    if is_vision_checkpoint(checkpoint):
        if target != "onnx":
            raise UsageError("--to", f"{checkpoint.name} is a traffic CNN: it exports to onnx only")
        from edgeweave.export.onnx_export import export_cnn_onnx

        return export_cnn_onnx(load_cnn(checkpoint), out)
    model = load_checkpoint(checkpoint)
    if target == "gguf":
        from edgeweave.export.gguf_export import export_gguf

        return export_gguf(model, checkpoint, out, dtype)  # type: ignore[arg-type]
    if target == "pte":
        from edgeweave.export.pte_export import export_pte

        return export_pte(model, out)
    if target == "onnx":
        from edgeweave.export.onnx_export import export_onnx

        return export_onnx(model, out)
    import torch

    from edgeweave.export.safetensors_export import export_safetensors

    return export_safetensors(model, checkpoint, out, torch.float32 if dtype == "f32" else torch.float16)
