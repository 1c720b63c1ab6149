"""Config files for a local cluster (the demo, tests and benchmarks write these).

One secret, one coordinator and any number of device daemons, all on
127.0.0.1 with mDNS bound to loopback, ports chosen by the OS.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalDevice:
    """One device daemon of a local cluster: what its config file says."""

    id: str
    kind: str
    backend: str
    threads: int | None = None
    max_queue: int = 4
    model: str = "weave-home-device"
    slots: int = 1
    port: int = 0  # 0: any free port
    host: str = "127.0.0.1"  # the address it binds (an emulated device: its namespace's)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def cluster_table(secret: str) -> str:
    return f"[cluster]\nsecret = {_q(secret)}\n"


def device_toml(p: LocalDevice, secret: str, advertise: bool = True) -> str:
    threads = f"threads = {p.threads}\n" if p.threads else ""
    return (
        cluster_table(secret)
        + f"\n[device]\nid = {_q(p.id)}\nkind = {_q(p.kind)}\nhost = {_q(p.host)}\nport = {p.port}\n"
        + f"advertise = {str(advertise).lower()}\n"
        + f"\n[[device.models]]\nmodel = {_q(p.model)}\nbackend = {_q(p.backend)}\n{threads}"
        + f"slots = {p.slots}\nmax_queue = {p.max_queue}\n"
    )


def coordinator_toml(
    secret: str,
    api_key: str | None,
    heartbeat_s: float = 0.5,
    mdns: bool = True,
    static: tuple[str, ...] = (),
    cloud: tuple[tuple[str, str, str, str], ...] = (),  # (name, url, api key, model)
    disco: str = "",  # the [coordinator.disco] table's lines
    tables: str = "",  # further [coordinator.*] tables, verbatim
) -> str:
    keys = f"api_keys = [{_q(api_key)}]\n" if api_key else ""
    text = (
        cluster_table(secret)
        + f"\n[coordinator]\nport = 0\nheartbeat_s = {heartbeat_s}\n{keys}"
        + f"\n[coordinator.discovery]\nmdns = {str(mdns).lower()}\nstatic = [{', '.join(_q(u) for u in static)}]\n"
    )
    for name, url, key, model in cloud:
        text += f"\n[[coordinator.cloud]]\nname = {_q(name)}\nurl = {_q(url)}\n"
        text += f"api_key = {_q(key)}\nmodels = [{_q(model)}]\n"
    return text + (f"\n[coordinator.disco]\n{disco}" if disco else "") + (f"\n{tables}" if tables else "")


def cloud_toml(
    model: str, api_key: str, kv_cache_mb: float = 16.0, extra_engine: str = "", extra_cloud: str = ""
) -> str:
    """``edgeweave cloud serve`` on any free port with one API key."""
    return (
        f"[cloud]\nmodel = {_q(model)}\nport = 0\napi_keys = [{_q(api_key)}]\n{extra_cloud}"
        f"\n[cloud.engine]\nkv_cache_mb = {kv_cache_mb}\n{extra_engine}"
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)  # it holds the cluster secret
    return path
