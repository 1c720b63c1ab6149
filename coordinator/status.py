"""``edgeweave status``: the cluster as one coordinator sees it, as tables that fit 80 columns.

It reads the coordinator's ``GET /health``, ``/v1/devices`` and ``/v1/models`` with a client API
key.  The views below name only the fields the tables show and ignore the rest, so a coordinator
newer or older than this client still reads; cloud endpoints with their health are shown when the
coordinator reports them (a ``cloud`` list in ``/v1/devices`` or ``/health``), and only their
models' routes otherwise.  An unreachable coordinator or a refused key is a :class:`UsageError`
naming ``--url`` or ``--api-key``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from rich import box
from rich.console import Console
from rich.table import Table

from edgeweave.errors import UsageError

TIMEOUT_S = 10.0
V = TypeVar("V", bound=BaseModel)


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CloudView(_View):
    name: str
    url: str | None = None
    models: list[str] = []
    state: str | None = None  # "up" | "down"; None where the coordinator does not say
    last_error: str | None = None


class Health(_View):
    status: str
    cloud: list[CloudView] | None = None


class ModelView(_View):
    name: str
    backend: str


class BackendLoadView(_View):
    model: str
    running: int = 0
    queued: int = 0
    decode_tok_s: float = 0.0


class TelemetryView(_View):
    cpu_percent: float | None = None
    backends: list[BackendLoadView] = []


class DeviceView(_View):
    id: str
    kind: str
    url: str
    state: str
    missed_heartbeats: int = 0
    models: list[ModelView] = []
    telemetry: TelemetryView | None = None


class DeviceList(_View):
    data: list[DeviceView]
    cloud: list[CloudView] | None = None


class ServedModel(_View):
    id: str
    endpoints: list[str] = []


class ModelList(_View):
    data: list[ServedModel]


class ClusterStatus(_View):
    url: str
    health: Health
    devices: list[DeviceView]
    cloud: list[CloudView] | None  # None: this coordinator does not report cloud endpoints
    models: list[ServedModel]


def _get(url: str, path: str, api_key: str, view: type[V]) -> V:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    request = urllib.request.Request(url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise UsageError("--api-key", f"the coordinator at {url} refused it (HTTP {e.code})") from None
        raise UsageError("--url", f"{url}{path} answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UsageError("--url", f"cannot reach a coordinator at {url} ({reason})") from None
    try:
        return view.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        raise UsageError("--url", f"{url}{path} is not an edgeweave coordinator's answer") from None


def fetch_status(url: str, api_key: str) -> ClusterStatus:
    url = url.rstrip("/")
    health = _get(url, "/health", api_key, Health)
    devices = _get(url, "/v1/devices", api_key, DeviceList)
    models = _get(url, "/v1/models", api_key, ModelList)
    cloud = devices.cloud if devices.cloud is not None else health.cloud
    return ClusterStatus(url=url, health=health, devices=devices.data, cloud=cloud, models=models.data)


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

    if status.cloud is not None:
        cloud = _table("cloud endpoints", "endpoint", "state", "models", "last error")
        for c in status.cloud:
            cloud.add_row(f"{c.name}\n{c.url or ''}", c.state or "-", "\n".join(c.models), c.last_error or "")
        console.print(cloud if status.cloud else "cloud endpoints: none configured")

    models = _table("models", "model", "served by")
    for m in status.models:
        models.add_row(m.id, ", ".join(m.endpoints))
    console.print(models if status.models else "models: none served")
