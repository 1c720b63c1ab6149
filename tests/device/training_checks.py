"""How a distributed training step is held against single-process training, on any x86 CPU.

Gradients are sums of float32 products.  Another CPU (AVX-512 rather than AVX2), another cut or
another split of the batch sums them in another order, which moves each by a few ulps of the
terms summed: the all-reduced gradients a stage is handed are compared with the single-process
ones at ``rtol`` 1e-4 plus ``atol`` 1e-5 of the tensor's largest gradient, every step, every
element.  A wrong gradient (a missing micro-batch, a wrong loss scale, a gradient routed to the
wrong parameter) is off by a sizeable fraction of the gradient itself and fails.

Parameters after AdamW steps are compared only where the gradient decides the step.  Adam divides
by the root of the second moment, so where a gradient is near zero its sign is reduction-order
noise, and that noise becomes a step of about the learning rate.  Elements whose gradient stayed at
or above 1e-4 of the tensor's largest in every step have an update whose relative error is at most
the gradient's (about 1e-6 / 1e-4 = 1e-2 of a 1e-3 step in the worst case, 1e-5 in practice): they
must match at 1e-4.  At least 90% of the elements must be such, so the check never goes vacuous.
"""

from __future__ import annotations

import torch

from device.dora.stage import StageWorker

GRAD_RTOL = 1e-4
GRAD_ATOL_OF_MAX = 1e-5
DECIDED_OF_MAX = 1e-4
PARAM_TOL = 1e-4
MIN_DECIDED = 0.9


class RecordingWorker(StageWorker):
    """A stage worker that keeps the all-reduced gradients it was last handed."""

    received: dict[str, torch.Tensor]

    def set_gradients(self, grads: dict[str, torch.Tensor]) -> None:
        super().set_gradients(grads)
        self.received = {n: grads[n].clone() for n in self.stage.global_parameters()}


class GradientLog:
    """The single-process run's gradients per step and the elements whose step they decided."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.last: dict[str, torch.Tensor] = {}
        self.decided: dict[str, torch.Tensor] = {}

    def record(self) -> None:
        """Call after the single-process backward."""
        for name, p in self.model.named_parameters():
            g = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            self.last[name] = g
            steady = g.abs() >= DECIDED_OF_MAX * g.abs().max()
            self.decided[name] = self.decided[name] & steady if name in self.decided else steady


def assert_gradients_match(received: dict[str, torch.Tensor], log: GradientLog) -> None:
    for name, g in received.items():
        want = log.last[name]
        atol = GRAD_ATOL_OF_MAX * float(want.abs().max()) + 1e-12
        torch.testing.assert_close(g, want, rtol=GRAD_RTOL, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


def assert_parameters_match(
    params: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], log: GradientLog
) -> None:
    decided = total = 0
    for name, p in params.items():
        mask = log.decided[name]
        decided += int(mask.sum())
        total += mask.numel()
        torch.testing.assert_close(
            p.detach()[mask],
            expected[name].detach()[mask],
            rtol=PARAM_TOL,
            atol=PARAM_TOL,
            msg=lambda m, n=name: f"{n}: {m}",
        )
    assert decided >= MIN_DECIDED * total, f"only {decided} of {total} elements had a gradient that decided the step"
