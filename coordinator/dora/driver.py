"""Dora's pipeline driver: runs a plan's pipelines over stage handles, for inference and training.

A handle is anything with :class:`device.stage.StageWorker`'s methods: the
worker itself (in-process), or a remote daemon's stage spoken to in tensor
frames.  Inference sends each micro-batch through the pipeline's stages in
turn.  A training step splits the batch between data-parallel pipelines (by
their shares) and each pipeline's part into micro-batches; every micro-batch
goes forward through the stages, the last stage takes its share of the loss
and the gradients flow back; then the gradients of every parameter are summed
over all pipelines (the all-reduce) and every stage steps its optimizer.  The
result equals one step of single-process training on the whole batch up to
floating-point reassociation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from device.stage import IGNORE


class StageHandle(Protocol):
    def infer(self, x: torch.Tensor) -> torch.Tensor: ...
    def forward(self, key: str, x: torch.Tensor) -> torch.Tensor: ...
    def loss(
        self, key: str, x: torch.Tensor, targets: torch.Tensor, total_targets: int
    ) -> tuple[float, torch.Tensor | None]: ...
    def backward(self, key: str, grad: torch.Tensor) -> torch.Tensor | None: ...
    def gradients(self) -> dict[str, torch.Tensor]: ...
    def set_gradients(self, grads: dict[str, torch.Tensor]) -> None: ...
    def step(self) -> None: ...


def infer(pipeline: Sequence[StageHandle], tokens: torch.Tensor, micro_batches: int) -> torch.Tensor:
    outs = []
    for mb in tokens.tensor_split(micro_batches):
        for stage in pipeline:
            mb = stage.infer(mb)
        outs.append(mb)
    return torch.cat(outs)


def train_step(
    pipelines: Sequence[Sequence[StageHandle]],
    shares: Sequence[int],
    tokens: torch.Tensor,
    targets: torch.Tensor,
    micro_batches: int,
) -> float:
    """One optimizer step on ``tokens`` / ``targets`` ([B, T]); returns the batch's mean loss."""
    if sum(shares) != tokens.shape[0] or len(shares) != len(pipelines):
        raise ValueError(f"shares {list(shares)} must split {tokens.shape[0]} samples over {len(pipelines)} pipelines")
    total = int((targets != IGNORE).sum())
    loss = 0.0
    start = 0
    for p, (pipe, n) in enumerate(zip(pipelines, shares, strict=True)):
        part = slice(start, start + n)
        start += n
        for j, (x, y) in enumerate(
            zip(tokens[part].tensor_split(micro_batches), targets[part].tensor_split(micro_batches), strict=True)
        ):
            key = f"{p}.{j}"
            for stage in pipe[:-1]:
                x = stage.forward(key, x)
            share, grad = pipe[-1].loss(key, x, y, total)
            loss += share
            for stage in reversed(pipe[:-1]):
                assert grad is not None
                grad = stage.backward(key, grad)
    summed: dict[str, torch.Tensor] = {}
    for pipe in pipelines:
        for stage in pipe:
            for name, g in stage.gradients().items():
                summed[name] = summed[name] + g if name in summed else g.clone()
    for pipe in pipelines:
        for stage in pipe:
            stage.set_gradients(summed)
            stage.step()
    return loss
