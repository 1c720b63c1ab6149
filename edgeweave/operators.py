"""Circinus's operators: the real work a pipeline operator does, runnable on any tier.

- :class:`VisionOp`: a traffic CNN (a detector or a classifier of some width
  and input resolution, :data:`edgeweave.models.vision.VARIANTS`) run by
  onnxruntime on frames; frames arrive at 64x64 and are area-resized to the
  model's resolution, so a low-resolution variant does less work and sees
  less.
- :class:`LLMOp`: a weave-home model answering a prompt through llama.cpp.

Each also measures its accuracy on a labelled validation set through the same
runtime: held-out frames (:func:`edgeweave.models.vision.frames`, a seed no
training step draws) or held-out smart-home commands (exact match).  These are
the numbers Circinus plans with; nothing is assumed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgeweave.models.vision import VisionConfig, frames, is_vision_checkpoint

FRAME_SIZE = 64  # what the cameras send


class VisionOp:
    def __init__(self, model: str, threads: int = 1) -> None:
        import onnxruntime as ort

        from edgeweave.export.cache import runtime_file
        from edgeweave.models.registry import resolve_checkpoint

        path = resolve_checkpoint(model)
        self.name, self.config = model, VisionConfig.from_dir(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(runtime_file(path, "onnx")), opts, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits ``[B, classes]`` for frames ``[B, 3, 64, 64]`` (float32 in [0, 1])."""
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if x.shape[-1] != self.config.image_size:
            x = F.interpolate(x, size=self.config.image_size, mode="area")
        return self.session.run(None, {"frames": x.numpy()})[0]

    def accuracy(self, n: int = 512, seed: int = 10_000) -> float:
        x, y = frames(n, seed, FRAME_SIZE)
        predicted = self(x.numpy()).argmax(-1)
        return float((torch.from_numpy(predicted) == self.config.labels(y)).float().mean())


class LLMOp:
    def __init__(self, model: str, threads: int = 1) -> None:
        from device.backends import load_backend

        self.name = model
        self.backend = load_backend("llamacpp", model, threads=threads)

    def __call__(self, prompt: str) -> str:
        from edgeweave.chat import reply_text

        return reply_text(self.backend, prompt)

    def accuracy(self, n: int = 100) -> float:
        from edgeweave.models.evaluate import held_out_exact_match

        return held_out_exact_match(self.backend, n).exact_match


def load_operator(model: str, threads: int = 1) -> VisionOp | LLMOp:
    from edgeweave.models.registry import resolve_checkpoint

    return VisionOp(model, threads) if is_vision_checkpoint(Path(resolve_checkpoint(model))) else LLMOp(model, threads)
