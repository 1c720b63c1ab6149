"""``edgeweave status``: the cluster as one coordinator sees it, as tables that fit 80 columns.

It reads the coordinator's ``GET /health``, ``/v1/devices`` and ``/v1/models`` with a client API key,
through the one client (:mod:`edgeweave.wire.client`), into the coordinator's own response models
(:mod:`coordinator.cluster.views`).  An unreachable coordinator or a refused key is a
:class:`UsageError` naming ``--url`` or ``--api-key``.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table

from coordinator.cluster.views import CloudView, DeviceView, EndpointsView, Health, ModelList, ServedModel
from edgeweave.errors import UsageError
from edgeweave.wire.client import BlockingClient, NotTrusted, Refused, Unreachable

TIMEOUT_S = 10.0
V = TypeVar("V", bound=BaseModel)


class ClusterStatus(BaseModel):
    url: str
    health: Health
    devices: list[DeviceView]
    cloud: list[CloudView]
    models: list[ServedModel]


def _get(client: BlockingClient, path: str, view: type[V]) -> V:
    try:
        return client.get(path, view, TIMEOUT_S)
    except Refused as e:
        if e.status in (401, 403):
            raise UsageError("--api-key", f"the coordinator at {client.url} refused it (HTTP {e.status})") from None
        raise UsageError("--url", f"{client.url}{path} answered HTTP {e.status}") from None
    except Unreachable as e:
        raise UsageError("--url", f"cannot reach a coordinator at {client.url} ({e})") from None
    except NotTrusted:
        raise UsageError("--url", f"{client.url}{path} is not an edgeweave coordinator's answer") from None


def fetch_status(url: str, api_key: str) -> ClusterStatus:
    client = BlockingClient(url, api_key=api_key)
    health = _get(client, "/health", Health)
    devices = _get(client, "/v1/devices", EndpointsView)
    models = _get(client, "/v1/models", ModelList)
    return ClusterStatus(url=client.url, health=health, devices=devices.data, cloud=devices.cloud, models=models.data)


def _device_row(d: DeviceView) -> tuple[str, ...]:
    loads = {b.model: b for b in d.telemetry.backends} if d.telemetry else {}
    models, speeds, queues = [], [], []
    for m in d.models:
        load = loads.get(m.name)
        models.append(f"{m.name}/{m.backend}")
        speeds.append(f"{load.decode_tok_s:.0f}" if load else "-")
        queues.append(f"{load.running}+{load.queued}" if load else "-")
    state = d.state if d.missed_heartbeats == 0 else f"{d.state}\n{d.missed_heartbeats} missed"
    return (f"{d.id} ({d.kind})\n{d.url}", state, "\n".join(models), "\n".join(speeds), "\n".join(queues))


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def render(status: ClusterStatus, console: Console) -> None:
    up = sum(d.state == "up" for d in status.devices)
    console.print(f"coordinator {status.url}: {status.health.status}, {up} of {len(status.devices)} devices up")

    devices = _table("devices", "device", "state", "model/backend", "tok/s", "queue")
    for d in status.devices:
        devices.add_row(*_device_row(d))
    console.print(devices if status.devices else "devices: none admitted")

    cloud = _table("cloud endpoints", "endpoint", "state", "models", "last error")
    for c in status.cloud:
        cloud.add_row(f"cloud:{c.name}\n{c.url}", c.state, "\n".join(c.models), c.last_error or "")
    console.print(cloud if status.cloud else "cloud endpoints: none configured")

    models = _table("models", "model", "served by")
    for m in status.models:
        models.add_row(m.id, ", ".join(m.endpoints))
    console.print(models if status.models else "models: none served")
