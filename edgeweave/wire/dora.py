"""Dora's wire: the typed bodies of its calls, imported by both ends.

Device daemon (:mod:`device.dora.routes`), called by the coordinator (:mod:`coordinator.dora.remote`):

- ``POST /v1/dora/profile``: :class:`ProfileRequest` -> :class:`LayerProfile`;
- ``POST /v1/dora/stages``: :class:`LoadStage` -> :class:`LoadedStage`; ``GET``: :class:`StageList`;
  ``DELETE /v1/dora/stages/{id}``: :class:`Unloaded`;
- per stage, tensors travel as tensor frames (:mod:`edgeweave.wire.tensor_frames`) whose metadata
  is typed here: :class:`MicroBatch` (``/forward``, ``/backward``), :class:`LossShare` (``/loss``'s
  input frame), :class:`Gradient` (``/gradients``, one frame per parameter); ``/step`` and
  ``POST /gradients`` answer :class:`Ack`.

Coordinator (:mod:`coordinator.dora.api`), called by ``edgeweave dora`` and apps:

- ``POST /v1/dora/plan``: :class:`PlanRequest` -> :class:`PlanList` (the Pareto set, fastest first);
- ``POST /v1/dora/run``: :class:`RunRequest` -> :class:`RunResult`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

STAGE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileRequest(_Wire):
    model: str = Field(min_length=1)
    batch: int = Field(default=2, ge=1, le=256)
    seq_len: int = Field(default=32, ge=1, le=8192)
    rounds: int = Field(default=3, ge=1, le=100)


class LayerProfile(_Wire):
    """Per-sample forward and backward seconds of every layer (medians), the bytes leaving each
    layer per sample, each layer's weight bytes and the input's bytes per sample."""

    model: str
    batch: int
    seq_len: int
    forward_s: list[float]
    backward_s: list[float]
    activation_bytes: list[int]
    weight_bytes: list[int]
    input_bytes: int


class LoadStage(_Wire):
    id: str = Field(pattern=STAGE_ID_PATTERN)
    model: str = Field(min_length=1)
    start: int = Field(ge=0)
    end: int = Field(ge=1)
    lr: float = Field(default=0.0, ge=0.0)  # > 0: loaded for training, with an optimizer


class LoadedStage(_Wire):
    id: str
    parameters: int
    first: bool
    last: bool


class StageInfo(_Wire):
    id: str
    layers: tuple[int, int]


class StageList(_Wire):
    data: list[StageInfo]


class Unloaded(_Wire):
    id: str
    deleted: Literal[True] = True


class Ack(_Wire):
    ok: Literal[True] = True


class FrameMeta(_Wire):
    """A tensor frame's metadata, validated like a body (a bad field is a 400 naming it)."""


class MicroBatch(FrameMeta):
    key: str = Field(min_length=1)  # which micro-batch: its backward pass finds its forward pass by it


class LossShare(MicroBatch):
    total: int = Field(ge=1)  # the step's target count: each micro-batch's loss is its share of the mean


class Gradient(FrameMeta):
    name: str = Field(min_length=1)  # the parameter's name in the whole model


class PlanRequest(_Wire):
    model: str = Field(min_length=1)
    training: bool = False
    batch: int = Field(default=8, ge=1, le=4096)
    seq_len: int = Field(default=32, ge=1, le=8192)
    max_latency_s: float | None = Field(default=None, gt=0)
    min_throughput: float | None = Field(default=None, gt=0)


class RunRequest(PlanRequest):
    plan: int = Field(default=0, ge=0)  # index into the Pareto set, fastest first
    steps: int = Field(default=3, ge=1, le=10_000)


class StageView(_Wire):
    device: str
    layers: tuple[int, int]  # [start, end)


class PipelineView(_Wire):
    samples: int
    stages: list[StageView]


class PlanView(_Wire):
    """One plan and what Dora predicts for it."""

    pipelines: list[PipelineView]
    micro_batches: int
    latency_s: float
    throughput: float  # samples per second
    energy_j: float

    def layout(self) -> list[str]:
        """One line per data-parallel pipeline: ``pi-1[0:3] -> phone-1[3:6] x4``."""
        return [
            " -> ".join(f"{s.device}[{s.layers[0]}:{s.layers[1]}]" for s in p.stages) + f" x{p.samples}"
            for p in self.pipelines
        ]


class PlanList(_Wire):
    object: Literal["list"] = "list"
    data: list[PlanView]


class Measured(_Wire):
    batch_s: float  # median over the steps
    steps: int
    losses: list[float]  # training: each step's mean loss
    replans: int  # devices that left mid-run, each re-planned around


class RunResult(PlanView):
    measured: Measured
