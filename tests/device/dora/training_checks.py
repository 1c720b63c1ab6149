"""How a distributed training step is held against single-process training, on any x86 CPU.

Each step the single-process reference first takes the distributed model's parameters (``sync``),
so it computes the same step from the same point; without that, the two runs drift apart a little
more every step (below) and later steps compare different models.

Gradients are sums of float32 products.  Another CPU (AVX-512 rather than AVX2), another cut or
another split of the batch sums them in another order, which moves each by a few ulps of the
terms summed: measured here at most 5e-7 of the tensor's largest gradient.  The all-reduced
gradients a stage is handed are compared with the reference's at ``rtol`` 1e-4 plus ``atol`` 1e-5
of the tensor's largest gradient (a 20x margin), every step, every element.  A wrong gradient (a
missing micro-batch, a wrong loss scale, a gradient routed to the wrong parameter) is off by a
sizeable fraction of the gradient itself and fails.

Parameters after an AdamW step are compared only where the gradient decides the step.  Adam divides
by the root of the second moment, so where a gradient is near zero its sign is reduction-order
noise, and that noise becomes a step of about the learning rate (1e-3: the 1.0e-3 difference seen
on an AVX-512 machine).  Where the step's gradient is at least 1e-4 of the tensor's largest, the
noise is at most 5e-3 of the gradient and moves the update by about as much of one 1e-3 step
(5e-6, 20x inside the tolerance): such elements must match at 1e-4.  Each tensor's largest element
is always among them; measured, they are 91-99.8% of a language-model stage's elements and 35-54%
of a traffic-CNN stage's (whose dead units get exactly zero gradient).  The share is a property of
the reference's gradients, not of the CPU; at least 25% must be, so the check never goes vacuous.
"""

from __future__ import annotations

import torch

from device.dora.stage import StageWorker

GRAD_RTOL = 1e-4
GRAD_ATOL_OF_MAX = 1e-5
DECIDED_OF_MAX = 1e-4
PARAM_TOL = 1e-4
MIN_DECIDED = 0.25


class RecordingWorker(StageWorker):
    """A stage worker that keeps the all-reduced gradients it was last handed."""

    received: dict[str, torch.Tensor]

    def set_gradients(self, grads: dict[str, torch.Tensor]) -> None:
        super().set_gradients(grads)
        self.received = {n: grads[n].clone() for n in self.stage.global_parameters()}


class GradientLog:
    """The reference's last gradients and the elements whose step they decided."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.last: dict[str, torch.Tensor] = {}
        self.decided: dict[str, torch.Tensor] = {}

    def sync(self, params: dict[str, torch.Tensor]) -> None:
        """Take the distributed model's parameters (every name of the model) before a step."""
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                p.copy_(params[name])

    def record(self) -> None:
        """Call after the reference's backward."""
        for name, p in self.model.named_parameters():
            g = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            self.last[name] = g
            self.decided[name] = g.abs() >= DECIDED_OF_MAX * g.abs().max()


def assert_gradients_match(received: dict[str, torch.Tensor], log: GradientLog) -> None:
    for name, g in received.items():
        want = log.last[name]
        atol = GRAD_ATOL_OF_MAX * float(want.abs().max()) + 1e-12
        torch.testing.assert_close(g, want, rtol=GRAD_RTOL, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


def assert_parameters_match(
    params: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], log: GradientLog
) -> None:
    """After the last step: ``params`` (a stage's) against the reference's, where that step's gradient decided."""
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
