"""Device telemetry from psutil, and the energy estimate.

Power model (documented in the README): board power is linear in CPU
utilisation, ``P = idle_w + (max_w - idle_w) * u`` with ``u`` the machine's
CPU utilisation in [0, 1] and ``idle_w`` / ``max_w`` per device kind
(:data:`edgeweave.config.DEFAULT_POWER`, overridable per device).  The daemon
samples ``u`` once a second and integrates ``P`` into ``energy_j``.  The
marginal energy of a token is the busy part of that power for the cores a
backend keeps busy, divided by its measured decode speed
(:attr:`device.worker.ModelWorker.joules_per_token`).  It is an estimate: no
device here has a power meter, and the model ignores GPUs and radios.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Sequence

import psutil

from device.worker import ModelWorker
from edgeweave.config import PowerModel
from edgeweave.wire.protocol import Telemetry


class TelemetrySampler:
    def __init__(self, device_id: str, power: PowerModel, period_s: float = 1.0) -> None:
        self.device_id = device_id
        self.power = power
        self.period_s = period_s
        self.cpu_percent = 0.0
        self.energy_j = 0.0
        self._last = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        psutil.cpu_percent(interval=None)  # starts the utilisation window

    @property
    def power_w(self) -> float:
        return self.power.idle_w + (self.power.max_w - self.power.idle_w) * self.cpu_percent / 100.0

    def sample(self) -> None:
        now = time.monotonic()
        self.energy_j += self.power_w * (now - self._last)  # the power of the interval just ended
        self.cpu_percent = psutil.cpu_percent(interval=None)
        self._last = now

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            self.sample()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def snapshot(self, workers: Sequence[ModelWorker]) -> Telemetry:
        mem = psutil.virtual_memory()
        battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
        return Telemetry(
            device=self.device_id,
            time=time.time(),
            cpu_percent=self.cpu_percent,
            memory_used_mb=(mem.total - mem.available) / 2**20,
            memory_total_mb=mem.total / 2**20,
            load_avg=os.getloadavg() if hasattr(os, "getloadavg") else None,
            battery_percent=battery.percent if battery else None,
            power_plugged=battery.power_plugged if battery else None,
            temperatures_c=_temperatures(),
            power_w=round(self.power_w, 3),
            energy_j=round(self.energy_j, 3),
            backends=[w.load() for w in workers],
        )


def _temperatures() -> dict[str, float]:
    if not hasattr(psutil, "sensors_temperatures"):
        return {}
    try:
        sensors = psutil.sensors_temperatures()
    except OSError:
        return {}
    return {f"{chip}/{t.label or i}": t.current for chip, temps in sensors.items() for i, t in enumerate(temps)}
