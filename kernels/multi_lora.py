"""Multi-LoRA over a batch whose rows belong to different adapters (tLoRA, arXiv 2602.07263;
Punica's SGMV / S-LoRA's MBGMM for serving).

Rows of ``x [T, in]`` come in :class:`Segments`: runs of consecutive rows that share one adapter.
For each segment ``s`` with adapter ``i``: ``delta[rows] = scaling_i * (x[rows] @ A_i.T) @ B_i.T``
(shrink to rank ``r_i``, expand back), adapters of different ranks side by side, none padded to
the largest.  Three implementations of one contract, :func:`lora_delta`, all differentiable in
``x`` and every ``A_i``/``B_i``:

- ``"reference"``: the oracle, one plain matmul pair per segment (:func:`lora_delta_reference`);
- ``"loop"``: the baseline, one pass per adapter over a boolean row mask (gather, compute,
  scatter), the way a mixed-adapter batch runs when each adapter is applied separately;
- ``"segmented"``: the engine's torch path on CPU;
- ``"triton"``: the fused segmented gather matmul (:mod:`kernels.triton_multi_lora`), forward and
  backward.

:class:`MultiLoraLinear` puts this behind an ``nn.Linear``'s place in a model, and
:class:`LoraRouting` tells every such layer, for the forward pass about to run, which segments
the rows form and which adapters the indices mean: the same routing object drives tLoRA's
training super-model and the cloud engine's mixed-adapter batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

Impl = Literal["reference", "loop", "segmented", "triton"]
NO_ADAPTER = -1  # a segment whose rows use the base weights only


@dataclass(frozen=True)
class Segments:
    """``bounds``: S+1 increasing row offsets from 0 to T; segment s is rows ``bounds[s]:bounds[s+1]``
    and uses adapter ``adapters[s]`` (an index into the adapter list, or ``NO_ADAPTER``)."""

    bounds: tuple[int, ...]
    adapters: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.adapters) + 1 or self.bounds[0] != 0:
            raise ValueError("Segments: bounds must start at 0 and have one more entry than adapters")
        if any(hi < lo for lo, hi in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError("Segments: bounds must not decrease")

    @property
    def rows(self) -> int:
        return self.bounds[-1]

    @classmethod
    def of_rows(cls, adapter_per_row: Sequence[int]) -> Segments:
        """Runs of equal adapters in a per-row adapter list."""
        bounds, adapters = [0], []
        for i, a in enumerate(adapter_per_row):
            if adapters and adapters[-1] == a:
                bounds[-1] = i + 1
            else:
                adapters.append(a)
                bounds.append(i + 1)
        return cls(tuple(bounds), tuple(adapters))

    def repeat_rows(self, k: int) -> Segments:
        """The same segments when every row becomes ``k`` rows (samples -> their tokens)."""
        return Segments(tuple(b * k for b in self.bounds), self.adapters)


@dataclass(frozen=True)
class LoraWeights:
    """One adapter's pair for one layer: A [rank, in], B [out, rank], and its scaling alpha / rank."""

    a: torch.Tensor
    b: torch.Tensor
    scaling: float


def lora_delta_reference(x: torch.Tensor, segments: Segments, adapters: Sequence[LoraWeights | None]) -> torch.Tensor:
    """x [T, in] -> delta [T, out]: each segment through its own adapter, one matmul pair each."""
    out_features = next(w.b.shape[0] for w in adapters if w is not None)
    parts = []
    for s, idx in enumerate(segments.adapters):
        lo, hi = segments.bounds[s], segments.bounds[s + 1]
        w = adapters[idx] if idx != NO_ADAPTER else None
        if w is None:
            parts.append(x.new_zeros(hi - lo, out_features))
        else:
            parts.append((x[lo:hi] @ w.a.t().to(x.dtype)) @ w.b.t().to(x.dtype) * w.scaling)
    return torch.cat(parts) if parts else x.new_zeros(0, out_features)


def lora_delta(
    x: torch.Tensor, segments: Segments, adapters: Sequence[LoraWeights | None], impl: Impl = "segmented"
) -> torch.Tensor:
    """The multi-LoRA delta of ``x [T, in]`` by ``impl`` (see the module docstring) -> [T, out]."""
    if impl == "reference":
        return lora_delta_reference(x, segments, adapters)
    raise NotImplementedError(impl)  # the helper building the kernels fills in loop/segmented/triton


@dataclass
class LoraRouting:
    """What the next forward pass's rows are: segments over the flattened rows of every adapted
    layer's input, and, per module path, the adapter list the segment indices refer to.
    ``segments`` None: the base model alone (no adapter on any row)."""

    impl: Impl = "segmented"
    segments: Segments | None = None
    weights: dict[str, list[LoraWeights | None]] = field(default_factory=dict)


class MultiLoraLinear(nn.Module):
    """An ``nn.Linear`` (frozen, shared) plus the routed adapters' deltas for its rows."""

    def __init__(self, base: nn.Linear, path: str, routing: LoraRouting) -> None:
        super().__init__()
        self.base = base
        self.path = path
        self.routing = routing

    @property
    def weight(self) -> torch.Tensor:  # code that reads the wrapped layer's weight still can
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        r = self.routing
        adapters = r.weights.get(self.path)
        if r.segments is None or not adapters or all(w is None for w in adapters):
            return y
        flat = x.reshape(-1, x.shape[-1])
        if r.segments.rows != flat.shape[0]:
            raise ValueError(f"{self.path}: routing covers {r.segments.rows} rows, the input has {flat.shape[0]}")
        return y + lora_delta(flat, r.segments, adapters, r.impl).view(*y.shape).to(y.dtype)


def attach_multi_lora(model: nn.Module, paths: Sequence[str], routing: LoraRouting) -> None:
    """Replace each ``nn.Linear`` at ``paths`` (module paths in ``model``) by a MultiLoraLinear
    sharing ``routing``; paths already wrapped are left as they are."""
    for path in paths:
        parent_path, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_path)
        layer = getattr(parent, name)
        if isinstance(layer, MultiLoraLinear):
            continue
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"{path} is a {type(layer).__name__}, not an nn.Linear")
        setattr(parent, name, MultiLoraLinear(layer, path, routing))
