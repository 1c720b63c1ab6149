"""A pipeline stage on a device (Dora's execution): a contiguous range of an edgeweave model's
decoder layers, and its runtime for inference and training.

The first stage also embeds token ids; the last also applies the final norm
and the LM head.  Stages pass ``[B, T, dim]`` hidden states (the first takes
``[B, T]`` token ids, the last returns ``[B, T, vocab]`` logits), whole
sequences at a time (no KV cache), so a chain of stages computes exactly what
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

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgeweave.errors import UsageError
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.llama import Transformer

IGNORE = -100  # target id that does not count


class Stage(nn.Module):
    def __init__(self, model: Transformer, start: int, end: int) -> None:
        super().__init__()
        n = model.config.n_layers
        if not 0 <= start < end <= n:
            raise UsageError("layers", f"[{start}, {end}) is not a non-empty range within the model's {n}")
        if model.config.tie_embeddings and (start, end) != (0, n):
            raise UsageError("layers", "a model with tied embeddings cannot be cut into stages")
        self.start, self.end, self.n_layers = start, end, n
        self.layers = nn.ModuleList(model.model.layers[start:end])
        self.embed = model.model.embed_tokens if start == 0 else None
        self.norm = model.model.norm if end == n else None
        self.head = model.lm_head if end == n else None
        self.register_buffer("rope_cos", model.rope_cos, persistent=False)
        self.register_buffer("rope_sin", model.rope_sin, persistent=False)

    @classmethod
    def load(cls, checkpoint: str | Path, start: int, end: int) -> Stage:
        """The layers [start, end) of a checkpoint (the rest is dropped once loaded)."""
        return cls(load_checkpoint(checkpoint), start, end)

    @property
    def first(self) -> bool:
        return self.embed is not None

    @property
    def last(self) -> bool:
        return self.head is not None

    def global_parameters(self) -> dict[str, nn.Parameter]:
        """Parameters under the whole model's names, so replicas cut differently still match."""
        out: dict[str, nn.Parameter] = {}
        for name, p in self.named_parameters():
            if name.startswith("layers."):
                index, rest = name.removeprefix("layers.").split(".", 1)
                name = f"model.layers.{self.start + int(index)}.{rest}"
            else:
                name = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}.get(
                    name, "lm_head.weight"
                )
            out[name] = p
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) if self.embed is not None else x
        t = h.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        for layer in self.layers:
            h = layer(h, cos, sin, None, None)
        if self.head is not None and self.norm is not None:
            return self.head(self.norm(h))
        return h


class StageWorker:
    def __init__(self, stage: Stage, lr: float = 0.0) -> None:
        self.stage = stage
        self.opt = torch.optim.AdamW(stage.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05) if lr else None
        self._saved: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        self.stage.eval()
        return self.stage(x)

    def forward(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Training forward of micro-batch ``key``; the output goes to the next stage, detached."""
        self.stage.train()
        inp = x if self.stage.first else x.detach().requires_grad_()
        out = self.stage(inp)
        self._saved[key] = (inp, out)
        return out.detach()

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

    def backward(self, key: str, grad: torch.Tensor) -> torch.Tensor | None:
        """Backward of micro-batch ``key`` given the next stage's gradient; returns the gradient for
        the previous stage (None on the first)."""
        inp, out = self._saved.pop(key)
        out.backward(grad)
        return None if self.stage.first else inp.grad

    def gradients(self) -> dict[str, torch.Tensor]:
        """This stage's gradients under the whole model's parameter names."""
        return {
            n: (p.grad if p.grad is not None else torch.zeros_like(p))
            for n, p in self.stage.global_parameters().items()
        }

    def set_gradients(self, grads: dict[str, torch.Tensor]) -> None:
        for n, p in self.stage.global_parameters().items():
            p.grad = grads[n].clone()

    def step(self) -> None:
        if self.opt is None:
            raise UsageError("step", "this stage was loaded for inference (lr 0): it has no optimizer")
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
