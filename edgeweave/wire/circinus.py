"""Circinus's wire: the typed bodies of its calls, imported by both ends.

- ``POST /v1/circinus/run`` (device daemons and the cloud service, :mod:`edgeweave.operators.routes`;
  relayed by a coordinator at ``/v1/circinus/run/{endpoint}``): one tensor frame
  (:mod:`edgeweave.wire.tensor_frames`) in, the input frames ``[B, 3, 64, 64]`` for a vision
  operator (an empty tensor for an LLM) with :class:`OperatorCall` as its metadata; one frame back,
  the logits (an empty tensor for an LLM) with :class:`OperatorAnswer`.
- ``GET /v1/circinus/endpoints`` (a coordinator, :mod:`coordinator.circinus.api`): :class:`EndpointList`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RUN_PATH = "/v1/circinus/run"
ENDPOINTS_PATH = "/v1/circinus/endpoints"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OperatorCall(_Wire):
    model: str = Field(min_length=1)  # the operator's model (a vision checkpoint or an LLM)
    prompt: str | None = None  # an LLM operator's input


class OperatorAnswer(_Wire):
    seconds: float  # compute time, as the tier measured it
    text: str | None = None  # an LLM operator's answer


class EndpointInfo(_Wire):
    id: str  # a device id, or ``cloud:NAME``
    kind: str  # the device's kind (pi, phone, jetson, ...) or ``cloud``


class EndpointList(_Wire):
    object: Literal["list"] = "list"
    data: list[EndpointInfo]
