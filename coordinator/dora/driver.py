"""Dora's pipeline driver: runs a plan's pipelines over stage handles, for inference and training.

A handle is anything with :class:`device.dora.stage.StageWorker`'s methods: the
worker itself (in-process), or a remote daemon's stage spoken to in tensor
frames.  The driver relays every activation: a stage's output comes back to
it and goes on to the next stage (with the driver wired to the access point,
that costs the same airtime as a device-to-device transfer).  Micro-batches
are pipelined: each runs in its own thread through the stages, and a stage
serves one call at a time, so micro-batch ``j + 1`` computes on a stage while
``j`` is on the next (GPipe-style; in training a micro-batch's backward pass
follows its own forward pass, interleaving with the others' forwards).
Data-parallel pipelines run side by side.

A training step splits the batch between pipelines (by their shares) and
each pipeline's part into micro-batches; the last stage takes each
micro-batch's share of the loss and the gradients flow back; then every
stage's gradients are gathered by the driver, summed per parameter over the
pipelines and sent back (the all-reduce, a parameter-server star through the
driver; skipped for one pipeline), and every stage steps its optimizer.  The result equals one step of
single-process training on the whole batch up to floating-point
reassociation (the order in which micro-batches' gradients accumulate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

import torch

from edgeweave.models.train import IGNORE

T = TypeVar("T")


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


def _side_by_side(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Run every job in its own thread; results in order; the first failure is raised."""
    with ThreadPoolExecutor(max(1, len(jobs))) as pool:
        return [f.result() for f in [pool.submit(job) for job in jobs]]


def _through(pipeline: Sequence[StageHandle], mb: torch.Tensor) -> torch.Tensor:
    for stage in pipeline:
        mb = stage.infer(mb)
    return mb


def infer(pipeline: Sequence[StageHandle], inputs: torch.Tensor, micro_batches: int) -> torch.Tensor:
    parts = inputs.tensor_split(micro_batches)
    return torch.cat(_side_by_side([lambda mb=mb: _through(pipeline, mb) for mb in parts]))


def infer_plan(pipelines: Sequence[Sequence[StageHandle]], shares: Sequence[int], inputs: torch.Tensor,
               micro_batches: int) -> torch.Tensor:  # fmt: skip
    """The batch split between data-parallel pipelines by ``shares``, each pipelined."""
    parts = inputs.split(list(shares))
    return torch.cat(
        _side_by_side([lambda p=p, x=x: infer(p, x, micro_batches) for p, x in zip(pipelines, parts, strict=True)])
    )


def _micro_batch(pipe: Sequence[StageHandle], key: str, x: torch.Tensor, y: torch.Tensor, total: int) -> float:
    for stage in pipe[:-1]:
        x = stage.forward(key, x)
    share, grad = pipe[-1].loss(key, x, y, total)
    for stage in reversed(pipe[:-1]):
        assert grad is not None
        grad = stage.backward(key, grad)
    return share


def train_step(
    pipelines: Sequence[Sequence[StageHandle]],
    shares: Sequence[int],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    micro_batches: int,
) -> float:
    """One optimizer step on ``inputs`` / ``targets`` (batch first); returns the batch's mean loss."""
    if sum(shares) != inputs.shape[0] or len(shares) != len(pipelines):
        raise ValueError(f"shares {list(shares)} must split {inputs.shape[0]} samples over {len(pipelines)} pipelines")
    total = int((targets != IGNORE).sum())
    jobs: list[Callable[[], float]] = []
    for p, (pipe, x, y) in enumerate(zip(pipelines, inputs.split(list(shares)), targets.split(list(shares)),
                                         strict=True)):  # fmt: skip
        for j, (xm, ym) in enumerate(zip(x.tensor_split(micro_batches), y.tensor_split(micro_batches), strict=True)):
            jobs.append(lambda pipe=pipe, key=f"{p}.{j}", xm=xm, ym=ym: _micro_batch(pipe, key, xm, ym, total))
    loss = sum(_side_by_side(jobs))
    stages = [stage for pipe in pipelines for stage in pipe]
    if len(pipelines) == 1:  # nothing to all-reduce
        _side_by_side([stage.step for stage in stages])
        return loss
    summed: dict[str, torch.Tensor] = {}
    for grads in _side_by_side([stage.gradients for stage in stages]):
        for name, g in grads.items():
            summed[name] = summed[name] + g if name in summed else g.clone()

    def update(stage: StageHandle) -> None:
        stage.set_gradients(summed)
        stage.step()

    _side_by_side([lambda s=s: update(s) for s in stages])
    return loss
