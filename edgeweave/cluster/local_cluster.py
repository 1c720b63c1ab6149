"""A coordinator and device daemons as local processes on 127.0.0.1.

What the demo runs, and what the multi-process tests and the edge-runtime
benchmark start: real processes, real HTTP, real mDNS on loopback.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from edgeweave.cluster.cluster_files import LocalDevice, cloud_toml, coordinator_toml, device_toml, new_secret, write
from edgeweave.cluster.processes import ServiceProcess, spawn

DEMO_PROFILES = (
    LocalDevice("phone-1", "phone", "executorch", max_queue=2),
    LocalDevice("pi-1", "pi", "llamacpp", threads=1, max_queue=2),
    LocalDevice("jetson-1", "jetson", "torch", threads=1, max_queue=2),
)


@dataclass(frozen=True)
class RuntimeExport:
    """One model exported for one runtime (``gguf``: llama.cpp, ``pte``: ExecuTorch) into the cache."""

    model: str
    target: str

    @property
    def cached(self) -> bool:
        from edgeweave.export.cache import cached_export
        from edgeweave.models.registry import resolve_checkpoint

        path = resolve_checkpoint(self.model)
        return path.is_file() or cached_export(path, self.target).is_file()  # a GGUF file needs no export

    def run(self) -> Path:
        from edgeweave.export.cache import runtime_file
        from edgeweave.models.registry import resolve_checkpoint

        return runtime_file(resolve_checkpoint(self.model), self.target)


def runtime_exports(profiles: tuple[LocalDevice, ...]) -> list[RuntimeExport]:
    """The exports the profiles' daemons load, each once (sorted: a stable order to show)."""
    targets = {"llamacpp": "gguf", "executorch": "pte"}
    return [RuntimeExport(m, targets[b]) for m, b in sorted({(p.model, p.backend) for p in profiles}) if b in targets]


def prepare_models(profiles: tuple[LocalDevice, ...]) -> None:
    """Export each model once for the runtimes the profiles use, so daemons start fast
    and never race each other writing the same cache file."""
    for export in runtime_exports(profiles):
        export.run()


class LocalCluster:
    def __init__(self, workdir: Path, heartbeat_s: float = 0.5, api_key: str = "", secret: str = "") -> None:
        from edgeweave.serving.api_keys import new_api_key

        self.workdir = workdir
        self.secret = secret or new_secret()
        self.api_key = api_key or new_api_key()
        self.heartbeat_s = heartbeat_s
        self.coordinator: ServiceProcess | None = None
        self.devices: dict[str, ServiceProcess] = {}
        self.clouds: dict[str, ServiceProcess] = {}
        self._upstream: tuple[tuple[str, str, str, str], ...] = ()  # the started clouds, for the coordinator

    # --- processes -------------------------------------------------------------------
    def start_cloud(
        self,
        model: str = "weave-home-cloud",
        env: dict[str, str] | None = None,
        timeout_s: float = 180.0,
        name: str = "cloud",
    ) -> ServiceProcess:
        """A cloud service (``edgeweave cloud serve``) serving ``model``; a coordinator started after it
        lists it as ``cloud:<name>``."""
        (svc,) = self.start_clouds({name: model}, env, timeout_s)
        return svc

    def start_clouds(
        self, models: dict[str, str], env: dict[str, str] | None = None, timeout_s: float = 180.0
    ) -> list[ServiceProcess]:
        """One cloud service per ``name -> model`` (a service serves one model), started together."""
        from edgeweave.serving.api_keys import new_api_key

        started = []
        for name, model in models.items():
            key = new_api_key()
            path = write(self.workdir / f"{name}.toml", cloud_toml(model, key))
            svc = spawn(name, ["cloud", "serve", "--config", str(path)], self.workdir / f"{name}.log", env=env)
            self.clouds[name] = svc
            started.append((name, model, key, svc))
        for name, model, key, svc in started:
            svc.wait_ready(timeout_s)
            self._upstream = (*self._upstream, (name, svc.url + "/v1", key, model))
        return [svc for *_, svc in started]

    def cloud_endpoint(self, name: str) -> tuple[str, str]:
        """A started cloud service's base URL and API key."""
        url, key = next((u, k) for n, u, k, _ in self._upstream if n == name)
        return url.removesuffix("/v1"), key

    def start_coordinator(
        self,
        timeout_s: float = 60.0,
        mdns: bool = True,
        static: tuple[str, ...] = (),
        cloud: tuple[tuple[str, str, str, str], ...] = (),
        disco: str = "",
        tables: str = "",
    ) -> ServiceProcess:
        """``cloud``: (name, base URL, API key, model) of OpenAI-compatible endpoints besides the one
        :meth:`start_cloud` started; ``disco``: the ``[coordinator.disco]`` table's lines; ``tables``:
        further ``[coordinator.*]`` tables, verbatim."""
        upstream = (*self._upstream, *cloud)
        text = coordinator_toml(self.secret, self.api_key, self.heartbeat_s, mdns, static, upstream, disco, tables)
        path = write(self.workdir / "coordinator.toml", text)
        self.coordinator = spawn(
            "coordinator", ["coordinator", "serve", "--config", str(path)], self.workdir / "coordinator.log"
        )
        self.coordinator.wait_ready(timeout_s)
        return self.coordinator

    def start_devices(
        self,
        profiles: tuple[LocalDevice, ...],
        timeout_s: float = 180.0,
        secret: str | None = None,
        advertise: bool = True,
    ) -> list[ServiceProcess]:
        """Start daemons in parallel; ``secret`` overrides the cluster's (impostor tests)."""
        started = [self.spawn_device(p, secret, advertise) for p in profiles]
        for svc in started:
            svc.wait_ready(timeout_s)
        return started

    def spawn_device(self, p: LocalDevice, secret: str | None = None, advertise: bool = True) -> ServiceProcess:
        """Start one daemon without waiting for it to be ready."""
        path = write(self.workdir / f"{p.id}.toml", device_toml(p, secret or self.secret, advertise))
        svc = spawn(p.id, ["device", "serve", "--config", str(path)], self.workdir / f"{p.id}.log")
        self.devices[p.id] = svc
        return svc

    def stop(self) -> None:
        for svc in [*self.devices.values(), *self.clouds.values(), *([self.coordinator] if self.coordinator else [])]:
            svc.stop()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- the coordinator's view ------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.coordinator is not None
        return self.coordinator.url

    def get(self, path: str) -> dict[str, object]:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.api_key}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def devices_view(self) -> list[dict[str, object]]:
        return self.get("/v1/devices")["data"]  # type: ignore[return-value]

    def up_ids(self) -> set[str]:
        return {str(d["id"]) for d in self.devices_view() if d["state"] == "up"}

    def wait_until(self, predicate: Callable[[set[str]], bool], timeout_s: float, poll_s: float = 0.02) -> float:
        """Seconds until ``predicate(up_ids)`` holds; raises TimeoutError after ``timeout_s``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            try:
                if predicate(self.up_ids()):
                    return time.monotonic() - start
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(poll_s)
        raise TimeoutError(f"cluster state not reached in {timeout_s} s (up: {sorted(self.up_ids())})")
