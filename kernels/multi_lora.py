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
- ``"segmented"``: the engine's torch path on CPU: contiguous slices of ``x`` (views, no gather)
  and one matmul pair per segment, or, for batches of many short segments (decode), the rows
  grouped by adapter with one gather and one matmul pair per adapter (:data:`GROUP_BELOW_ROWS`);
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


def _out_features(segments: Segments, adapters: Sequence[LoraWeights | None], x: torch.Tensor) -> int:
    """Check ``x`` against ``segments`` and the indices against ``adapters``; the delta's width."""
    if x.dim() != 2:
        raise ValueError(f"lora_delta: x must be [T, in], got shape {tuple(x.shape)}")
    if segments.rows != x.shape[0]:
        raise ValueError(f"lora_delta: segments cover {segments.rows} rows, x has {x.shape[0]}")
    bad = [i for i in segments.adapters if i != NO_ADAPTER and not 0 <= i < len(adapters)]
    if bad:
        raise ValueError(
            f"lora_delta: adapter index {bad[0]} is neither NO_ADAPTER nor one of {len(adapters)} adapters"
        )
    present = [w for w in adapters if w is not None]
    if not present:
        raise ValueError("lora_delta: no adapter has weights (the delta's width is unknown)")
    return present[0].b.shape[0]


def _runs(segments: Segments, adapters: Sequence[LoraWeights | None]) -> list[tuple[int, int, int]]:
    """(lo, hi, adapter index) of every non-empty segment; adapter NO_ADAPTER also where its weights
    are None (those rows take the base only)."""
    runs = []
    for s, idx in enumerate(segments.adapters):
        lo, hi = segments.bounds[s], segments.bounds[s + 1]
        if hi > lo:
            runs.append((lo, hi, idx if idx != NO_ADAPTER and adapters[idx] is not None else NO_ADAPTER))
    return runs


def _apply(x: torch.Tensor, w: LoraWeights) -> torch.Tensor:
    """PEFT's order: shrink, expand, then scale the [rows, out] result."""
    return (x @ w.a.t().to(x.dtype)) @ w.b.t().to(x.dtype) * w.scaling


def _apply_scaled_low(x: torch.Tensor, w: LoraWeights) -> torch.Tensor:
    """The same product, scaled at rank width ([rows, r] instead of [rows, out] multiplies)."""
    return (x @ w.a.t().to(x.dtype) * w.scaling) @ w.b.t().to(x.dtype)


def lora_delta_reference(x: torch.Tensor, segments: Segments, adapters: Sequence[LoraWeights | None]) -> torch.Tensor:
    """x [T, in] -> delta [T, out]: each segment through its own adapter, one matmul pair each."""
    out_features = _out_features(segments, adapters, x)
    parts = []
    for s, idx in enumerate(segments.adapters):
        lo, hi = segments.bounds[s], segments.bounds[s + 1]
        w = adapters[idx] if idx != NO_ADAPTER else None
        if w is None:
            parts.append(x.new_zeros(hi - lo, out_features))
        else:
            parts.append(_apply(x[lo:hi], w))
    return torch.cat(parts) if parts else x.new_zeros(0, out_features)


def _lora_delta_loop(x: torch.Tensor, segments: Segments, adapters: Sequence[LoraWeights | None]) -> torch.Tensor:
    """The baseline: every adapter applied on its own over the whole batch, its rows picked by a
    boolean mask (gather, shrink, expand, scatter-add into the delta)."""
    out_features = _out_features(segments, adapters, x)
    runs = _runs(segments, adapters)
    row_adapter = torch.full((x.shape[0],), NO_ADAPTER, dtype=torch.long, device=x.device)
    for lo, hi, idx in runs:
        row_adapter[lo:hi] = idx
    delta = x.new_zeros(x.shape[0], out_features)
    for idx in dict.fromkeys(idx for _, _, idx in runs if idx != NO_ADAPTER):
        mask = row_adapter == idx
        delta.index_put_((mask,), _apply(x[mask], adapters[idx]), accumulate=True)  # type: ignore[arg-type]
    return delta


# Below this many rows per segment on average (and with adapters split over several segments),
# one gather of the rows grouped by adapter and one matmul pair per adapter beat a matmul pair per
# segment: a pair of small matmuls costs tens of microseconds of call overhead on CPU, about what
# gathering a few hundred rows costs.  Measured (benchmarks/lora_kernel.py, dim 128 -> 512 and
# 1024 -> 1024): decode batches of 1-4 row segments favour grouping, 16+ row segments slices.
# One GEMM against all adapters' A concatenated ([sum r, in]) with each row's block picked by a
# mask, then one against B concatenated, was measured too and lost on every workload there
# (1.5-6x slower than this path): it multiplies every row by every adapter.
GROUP_BELOW_ROWS = 8


def _lora_delta_segmented(x: torch.Tensor, segments: Segments, adapters: Sequence[LoraWeights | None]) -> torch.Tensor:
    """The torch path: contiguous slices (views, no gather) and one matmul pair per segment,
    or, for many short segments, rows grouped by adapter and one matmul pair per adapter."""
    out_features = _out_features(segments, adapters, x)
    runs = _runs(segments, adapters)
    if not runs:
        return x.new_zeros(0, out_features)
    groups: dict[int, list[tuple[int, int]]] = {}
    for lo, hi, idx in runs:
        groups.setdefault(idx, []).append((lo, hi))
    adapted = [g for idx, g in groups.items() if idx != NO_ADAPTER]
    if sum(map(len, adapted)) > len(adapted) and x.shape[0] < GROUP_BELOW_ROWS * len(runs):
        return _grouped(x, groups, adapters, out_features)
    # split/cat: their backward is one cat/one split (slicing x would give a [T, in] gradient per segment)
    parts = x.split([hi - lo for lo, hi, _ in runs])
    outs = [
        x.new_zeros(p.shape[0], out_features) if idx == NO_ADAPTER else _apply_scaled_low(p, adapters[idx])  # type: ignore[arg-type]
        for p, (_, _, idx) in zip(parts, runs, strict=True)
    ]
    return torch.cat(outs) if outs else x.new_zeros(0, out_features)


def _grouped(
    x: torch.Tensor, groups: dict[int, list[tuple[int, int]]], adapters: Sequence[LoraWeights | None], out_features: int
) -> torch.Tensor:
    """Rows reordered so that each adapter's rows are contiguous, one matmul pair per adapter,
    then the original order restored (two gathers in all, against the loop's two per adapter)."""
    order = list(groups.items())
    perm = torch.cat([torch.arange(lo, hi, device=x.device) for _, ranges in order for lo, hi in ranges])
    parts = x.index_select(0, perm).split([sum(hi - lo for lo, hi in ranges) for _, ranges in order])
    outs = [
        x.new_zeros(p.shape[0], out_features) if idx == NO_ADAPTER else _apply_scaled_low(p, adapters[idx])  # type: ignore[arg-type]
        for p, (idx, _) in zip(parts, order, strict=True)
    ]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=x.device)
    return torch.cat(outs).index_select(0, inverse)


def lora_delta(
    x: torch.Tensor, segments: Segments, adapters: Sequence[LoraWeights | None], impl: Impl = "segmented"
) -> torch.Tensor:
    """The multi-LoRA delta of ``x [T, in]`` by ``impl`` (see the module docstring) -> [T, out]."""
    if impl == "reference":
        return lora_delta_reference(x, segments, adapters)
    if impl == "loop":
        return _lora_delta_loop(x, segments, adapters)
    if impl == "segmented":
        return _lora_delta_segmented(x, segments, adapters)
    if impl == "triton":
        # imported here: importing triton fixes TRITON_INTERPRET, which the caller may still be setting
        from kernels.triton_multi_lora import lora_delta_triton

        return lora_delta_triton(x, segments, adapters)
    raise ValueError(f"lora_delta: unknown impl {impl!r} (reference, loop, segmented or triton)")


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
