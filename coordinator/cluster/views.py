"""The cluster as the coordinator's API reports it (``/health``, ``/v1/devices``, ``/v1/models``): one typed
model per answer, built by :mod:`coordinator.api` from the registry and read back by ``edgeweave status``
(:mod:`coordinator.status`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from edgeweave.wire.protocol import ModelInfo, Telemetry

State = Literal["up", "down"]


class DeviceView(BaseModel):
    """One device as ``/v1/devices`` reports it."""

    id: str
    kind: str
    url: str
    source: Literal["mdns", "static"]
    state: State
    missed_heartbeats: int
    models: list[ModelInfo]
    in_flight: dict[str, int]
    telemetry: Telemetry | None


class CloudView(BaseModel):
    """One cloud endpoint as ``/v1/devices`` and ``/health`` report it."""

    name: str
    url: str
    models: list[str]
    state: State
    missed_heartbeats: int
    in_flight: int
    last_error: str | None


class Health(BaseModel):
    status: Literal["ok"] = "ok"  # the coordinator answers; what it can serve is below
    devices_up: int
    cloud_up: int
    cloud: list[CloudView]


class EndpointsView(BaseModel):
    """``/v1/devices``: the devices, and the cloud endpoints beside them."""

    object: Literal["list"] = "list"
    data: list[DeviceView]
    cloud: list[CloudView]


class ServedModel(BaseModel):
    """One model of ``/v1/models`` (OpenAI's model object) and the endpoints up that serve it."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "edgeweave"
    endpoints: list[str]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ServedModel]
