"""A pipeline stage on a device (Dora's execution): a contiguous range of a model's layers, and
its runtime for inference and training.

Two kinds of model can be cut.  An edgeweave language model: its layers are
the decoder layers; the first stage also embeds token ids, the last also
applies the final norm and the LM head; stages pass ``[B, T, dim]`` hidden
states (the first takes ``[B, T]`` token ids, the last returns ``[B, T,
vocab]`` logits), whole sequences at a time (no KV cache).  The traffic CNN
(:mod:`edgeweave.models.vision`): its layers are its blocks; stages pass
feature maps, the first takes ``[B, 3, H, W]`` frames and the last returns
``[B, classes]`` logits.  Either way a chain of stages computes exactly what
the whole model computes, op for op.

:class:`StageWorker` keeps, per micro-batch, the input and output of its
forward pass until the matching backward pass; the last stage computes the
loss itself (cross-entropy summed over the micro-batch's targets, divided by
the step's total target count, so micro-batches and data-parallel replicas
add up to the whole batch's mean).  Gradients are summed across replicas by
the caller (:meth:`gradients` / :meth:`set_gradients`, keyed by the whole
model's parameter names) before :meth:`step`.  Models with tied embeddings
cannot be cut (the tied weight would live on two stages).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from edgeweave.errors import UsageError
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.config import ModelConfig
from edgeweave.models.llama import Transformer
from edgeweave.models.train import IGNORE
from edgeweave.models.vision import TrafficCNN, VisionConfig, frames, is_vision_checkpoint, load_cnn

T = TypeVar("T")

TOKEN_LOW = 8  # sample_batch draws token ids from [TOKEN_LOW, vocab) (above the byte tokenizer's specials)


class ModelStage(nn.Module):
    """Layers [start, end) of a model; :meth:`load` picks the kind from the checkpoint."""

    def __init__(self, start: int, end: int, n_layers: int) -> None:
        super().__init__()
        if not 0 <= start < end <= n_layers:
            raise UsageError("layers", f"[{start}, {end}) is not a non-empty range within the model's {n_layers}")
        self.start, self.end, self.n_layers = start, end, n_layers

    @staticmethod
    def load(checkpoint: str | Path, start: int, end: int) -> ModelStage:
        """The layers [start, end) of a checkpoint (the rest is dropped once loaded)."""
        return cut(load_model(checkpoint), start, end)

    @property
    def first(self) -> bool:
        return self.start == 0

    @property
    def last(self) -> bool:
        return self.end == self.n_layers

    def global_name(self, name: str) -> str:
        raise NotImplementedError

    def global_parameters(self) -> dict[str, nn.Parameter]:
        """Parameters under the whole model's names, so replicas cut differently still match."""
        return {self.global_name(n): p for n, p in self.named_parameters()}


class DecoderStage(ModelStage):
    def __init__(self, model: Transformer, start: int, end: int) -> None:
        super().__init__(start, end, model.config.n_layers)
        if model.config.tie_embeddings and (start, end) != (0, self.n_layers):
            raise UsageError("layers", "a model with tied embeddings cannot be cut into stages")
        self.layers = nn.ModuleList(model.model.layers[start:end])
        self.embed = model.model.embed_tokens if self.first else None
        self.norm = model.model.norm if self.last else None
        self.head = model.lm_head if self.last else None
        self.register_buffer("rope_cos", model.rope_cos, persistent=False)
        self.register_buffer("rope_sin", model.rope_sin, persistent=False)

    def global_name(self, name: str) -> str:
        if name.startswith("layers."):
            index, rest = name.removeprefix("layers.").split(".", 1)
            return f"model.layers.{self.start + int(index)}.{rest}"
        return {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}.get(
            name, "lm_head.weight"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) if self.embed is not None else x
        t = h.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        for layer in self.layers:
            h = layer(h, cos, sin, None, None)
        if self.head is not None and self.norm is not None:
            return self.head(self.norm(h))
        return h


class ConvStage(ModelStage):
    def __init__(self, model: TrafficCNN, start: int, end: int) -> None:
        super().__init__(start, end, model.config.n_layers)
        self.blocks = nn.ModuleList(model.blocks[start:end])

    def global_name(self, name: str) -> str:
        index, rest = name.removeprefix("blocks.").split(".", 1)
        return f"blocks.{self.start + int(index)}.{rest}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def load_model(checkpoint: str | Path) -> Transformer | TrafficCNN:
    path = Path(checkpoint)
    return load_cnn(path) if is_vision_checkpoint(path) else load_checkpoint(path)


def cut(model: Transformer | TrafficCNN, start: int, end: int) -> ModelStage:
    return ConvStage(model, start, end) if isinstance(model, TrafficCNN) else DecoderStage(model, start, end)


def sample_batch(
    checkpoint: str | Path, batch: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch for the model (inputs, targets) read from its config alone: synthetic traffic frames
    and their classes, or random token ids ``[batch, seq_len]`` and the next ids."""
    path = Path(checkpoint)
    if is_vision_checkpoint(path):
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        return frames(batch, seed, VisionConfig.from_dir(path).image_size)
    cfg = ModelConfig.from_hf_dir(path)
    seq = torch.randint(TOKEN_LOW, cfg.vocab_size, (batch, min(seq_len, cfg.max_seq_len) + 1), generator=generator)
    return seq[:, :-1], seq[:, 1:]


def _serial(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def locked(self: StageWorker, *args: Any) -> T:
        with self.lock:
            return method(self, *args)

    return locked


class StageWorker:
    """A stage's runtime; one call at a time (a lock), as a device serves it."""

    def __init__(self, stage: ModelStage, lr: float = 0.0) -> None:
        self.stage = stage
        self.lock = threading.RLock()
        self.opt = torch.optim.AdamW(stage.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05) if lr else None
        self._saved: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @_serial
    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        self.stage.eval()
        return self.stage(x)

    @_serial
    def forward(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Training forward of micro-batch ``key``; the output goes to the next stage, detached."""
        self.stage.train()
        inp = x if self.stage.first else x.detach().requires_grad_()
        out = self.stage(inp)
        self._saved[key] = (inp, out)
        return out.detach()

    @_serial
    def loss(
        self, key: str, x: torch.Tensor, targets: torch.Tensor, total_targets: int
    ) -> tuple[float, torch.Tensor | None]:
        """Last stage: forward, the micro-batch's share of the step's mean loss, and its backward;
        returns (that share, the gradient for the previous stage)."""
        self.forward(key, x)
        inp, logits = self._saved.pop(key)
        flat = logits.reshape(-1, logits.shape[-1])
        share = F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE, reduction="sum") / total_targets
        share.backward()
        return float(share), (None if self.stage.first else inp.grad)

    @_serial
    def backward(self, key: str, grad: torch.Tensor) -> torch.Tensor | None:
        """Backward of micro-batch ``key`` given the next stage's gradient; returns the gradient for
        the previous stage (None on the first)."""
        inp, out = self._saved.pop(key)
        out.backward(grad)
        return None if self.stage.first else inp.grad

    @_serial
    def gradients(self) -> dict[str, torch.Tensor]:
        """This stage's gradients under the whole model's parameter names."""
        return {
            n: (p.grad if p.grad is not None else torch.zeros_like(p))
            for n, p in self.stage.global_parameters().items()
        }

    @_serial
    def set_gradients(self, grads: dict[str, torch.Tensor]) -> None:
        for n, p in self.stage.global_parameters().items():
            p.grad = grads[n].clone()

    @_serial
    def step(self) -> None:
        if self.opt is None:
            raise UsageError("step", "this stage was loaded for inference (lr 0): it has no optimizer")
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
