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
the numbers Circinus plans with; nothing is assumed.  The measurement is
deterministic, so it is kept in the export cache
(:func:`edgeweave.export.cache.cache_root`) under the checkpoint's key and the
validation set's size: every planning run after the first reads it back
instead of running the validation set again (an LLM's takes seconds).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgeweave.models.vision import VisionConfig, frames, is_vision_checkpoint

FRAME_SIZE = 64  # what the cameras send


def _remembered(checkpoint: Path, validation: str, measure: Callable[[], float]) -> float:
    """``measure()`` once per checkpoint's bytes and validation set, then read from the cache."""
    from edgeweave.export.cache import cache_root, checkpoint_key
    from edgeweave.fileio import atomic_output

    path = cache_root() / "accuracy" / f"{checkpoint.name}-{checkpoint_key(checkpoint)}-{validation}.json"
    if path.is_file():
        return float(json.loads(path.read_text())["accuracy"])
    value = measure()
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({"accuracy": value}))
    return value


class VisionOp:
    def __init__(self, model: str, threads: int = 1) -> None:
        import onnxruntime as ort

        from edgeweave.export.cache import runtime_file
        from edgeweave.models.registry import resolve_checkpoint

        self.path = resolve_checkpoint(model)
        self.name, self.config = model, VisionConfig.from_dir(self.path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        onnx = str(runtime_file(self.path, "onnx"))
        self.session = ort.InferenceSession(onnx, opts, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits ``[B, classes]`` for frames ``[B, 3, 64, 64]`` (float32 in [0, 1])."""
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if x.shape[-1] != self.config.image_size:
            x = F.interpolate(x, size=self.config.image_size, mode="area")
        return self.session.run(None, {"frames": x.numpy()})[0]

    def accuracy(self, n: int = 512, seed: int = 10_000) -> float:
        def measure() -> float:
            x, y = frames(n, seed, FRAME_SIZE)
            predicted = self(x.numpy()).argmax(-1)
            return float((torch.from_numpy(predicted) == self.config.labels(y)).float().mean())

        import onnxruntime

        return _remembered(self.path, f"onnxruntime{onnxruntime.__version__}-frames{n}-seed{seed}", measure)


class LLMOp:
    def __init__(self, model: str, threads: int = 1) -> None:
        from edgeweave.generation.backends import load_backend
        from edgeweave.models.registry import resolve_checkpoint

        self.name, self.path = model, resolve_checkpoint(model)
        self.backend = load_backend("llamacpp", model, threads=threads)

    def __call__(self, prompt: str) -> str:
        from edgeweave.generation.chat import reply_text

        return reply_text(self.backend, prompt)

    def accuracy(self, n: int = 100) -> float:
        from edgeweave.generation.evaluate import held_out_exact_match

        def measure() -> float:
            return held_out_exact_match(self.backend, n).exact_match

        import llama_cpp

        return _remembered(self.path, f"llama.cpp{llama_cpp.__version__}-commands{n}", measure)


def load_operator(model: str, threads: int = 1) -> VisionOp | LLMOp:
    from edgeweave.models.registry import resolve_checkpoint

    return VisionOp(model, threads) if is_vision_checkpoint(Path(resolve_checkpoint(model))) else LLMOp(model, threads)
