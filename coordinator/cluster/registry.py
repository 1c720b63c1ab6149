"""The coordinator's registry of endpoints: devices (admission, heartbeats, removal) and the
configured cloud endpoints (health checks).

A sighted daemon is admitted only after the cluster handshake: a signed
``GET /v1/info`` whose answer carries a valid response signature.  A daemon
from another cluster (fingerprint mismatch) is skipped without contact; one
that announces our fingerprint but cannot sign is an impostor: logged, never
used, re-checked only every ``RECHECK_REJECTED_S``.

Heartbeats poll ``/v1/telemetry``: after ``down_after_missed`` misses a device
is down (no new requests), after ``remove_after_missed`` it leaves the
registry; an mDNS goodbye removes it at once.  Sightings are kept, so a
device that comes back (same or new address) is re-admitted on the next
heartbeat even when mDNS says nothing new.

Cloud endpoints come from the config and never leave; each heartbeat checks
their health (an edgeweave cloud server's ``/health``, any other
OpenAI-compatible server's ``/models``): after ``down_after_missed`` failed
checks one is down, and up again at its first good answer.

:attr:`Registry.version` counts changes (admission, removal, up/down,
telemetry), so callers can cache what they derive from the registry (the
candidates a streaming answer's per-token decision ranks) and refresh it only
when the version moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import aiohttp

from coordinator.cluster.device_client import DeviceClient, NotTrusted, Refused, Unreachable
from coordinator.cluster.discovery import Sighting
from coordinator.cluster.energy import DeviceEnergy
from coordinator.cluster.views import CloudView, DeviceView, State
from edgeweave.config import CloudEndpoint, CoordinatorConfig
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.protocol import DeviceInfo, ModelInfo, Telemetry

log = logging.getLogger("edgeweave.registry")
RECHECK_REJECTED_S = 30.0


@dataclass
class DeviceRecord:
    info: DeviceInfo
    url: str
    source: Literal["mdns", "static"]
    sighting: str
    client: DeviceClient
    telemetry: Telemetry | None = None
    state: State = "up"
    missed: int = 0
    admitted_at: float = field(default_factory=time.time)
    in_flight: Counter[str] = field(default_factory=Counter)  # model -> streams we have open there

    @property
    def id(self) -> str:
        return self.info.id

    def model(self, name: str) -> ModelInfo | None:
        return next((m for m in self.info.models if m.name == name), None)

    def load_of(self, model: str) -> int:
        """Requests running or queued for ``model``: ours now, or the device's own count
        from the last heartbeat (other clients), whichever is larger."""
        reported = 0
        if self.telemetry is not None:
            reported = sum(b.running + b.queued for b in self.telemetry.backends if b.model == model)
        return max(self.in_flight[model], reported)

    def decode_tok_s(self, model: str) -> float:
        if self.telemetry is None:
            return 0.0
        return max((b.decode_tok_s for b in self.telemetry.backends if b.model == model), default=0.0)

    def energy(self, model: str) -> DeviceEnergy | None:
        """Marginal energy per decoded and prefilled token, once the device has measured both speeds."""
        if self.telemetry is None:
            return None
        for b in self.telemetry.backends:
            if b.model == model and b.joules_per_token > 0 and b.prefill_tok_s > 0:
                busy_w = b.joules_per_token * b.decode_tok_s
                return DeviceEnergy.measured(busy_w, b.decode_tok_s, b.prefill_tok_s)
        return None

    def view(self) -> DeviceView:
        return DeviceView(
            id=self.id,
            kind=self.info.kind,
            url=self.url,
            source=self.source,
            state=self.state,
            missed_heartbeats=self.missed,
            models=self.info.models,
            in_flight=dict(self.in_flight),
            telemetry=self.telemetry,
        )


@dataclass
class CloudRecord:
    """A configured cloud endpoint and what its health checks found (up until a check fails)."""

    endpoint: CloudEndpoint
    state: State = "up"
    missed: int = 0
    in_flight: int = 0  # streams we have open there
    last_error: str | None = None

    @property
    def name(self) -> str:
        return self.endpoint.name

    def health_url(self) -> str:
        base = str(self.endpoint.url).rstrip("/")
        if self.endpoint.extensions:  # an edgeweave cloud server: /health beside /v1
            return base.removesuffix("/v1") + "/health"
        return base + "/models"  # any OpenAI-compatible server answers this

    def view(self) -> CloudView:
        return CloudView(
            name=self.name,
            url=str(self.endpoint.url),
            models=self.endpoint.models,
            state=self.state,
            missed_heartbeats=self.missed,
            in_flight=self.in_flight,
            last_error=self.last_error,
        )


class Registry:
    """Implements :class:`coordinator.cluster.discovery.DiscoverySink`."""

    def __init__(self, cfg: CoordinatorConfig, key: ClusterKey, session: aiohttp.ClientSession) -> None:
        self.cfg = cfg
        self.key = key
        self.session = session
        self.devices: dict[str, DeviceRecord] = {}
        self.clouds: dict[str, CloudRecord] = {c.name: CloudRecord(c) for c in cfg.cloud}
        self.version = 0  # bumped on every change callers may cache on
        self.sightings: dict[str, Sighting] = {}
        self.rejected: dict[str, float] = {}  # url -> when the handshake failed
        self._checking: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    # --- discovery events ------------------------------------------------------------
    def found(self, sighting: Sighting) -> None:
        self.sightings[sighting.name] = sighting
        self._spawn(self._consider(sighting))

    def lost(self, name: str) -> None:
        self.sightings.pop(name, None)
        for rec in list(self.devices.values()):
            if rec.sighting == name:
                self._remove(rec, "announced its departure")

    # --- admission -------------------------------------------------------------------
    async def _consider(self, s: Sighting) -> None:
        if s.fingerprint is not None and s.fingerprint != self.key.fingerprint:
            if s.url not in self.rejected:
                log.info("ignoring %s at %s: it belongs to another cluster (key fingerprint differs)", s.name, s.url)
            self.rejected[s.url] = time.monotonic()
            return
        known = next((r for r in self.devices.values() if r.sighting == s.name), None)
        if known is not None and known.url == s.url:
            return
        rejected_at = self.rejected.get(s.url)
        if rejected_at is not None and time.monotonic() - rejected_at < RECHECK_REJECTED_S:
            return
        if s.url in self._checking:
            return
        self._checking.add(s.url)
        try:
            await self._handshake(s)
        finally:
            self._checking.discard(s.url)

    async def _handshake(self, s: Sighting) -> None:
        client = DeviceClient(self.session, self.key, s.url)
        timeout = max(2.0, 2 * self.cfg.heartbeat_s)
        try:
            info = await client.get("/v1/info", DeviceInfo, timeout)
            telemetry = await client.get("/v1/telemetry", Telemetry, timeout)
        except (NotTrusted, Refused) as e:
            first = s.url not in self.rejected
            self.rejected[s.url] = time.monotonic()
            if first:
                log.warning(
                    "REJECTED %s at %s: failed the cluster handshake (%s); it will not be used", s.name, s.url, e
                )
            return
        except Unreachable as e:
            log.debug("%s not reachable yet: %s", s.url, e)
            return
        if s.device_id is not None and s.device_id != info.id:
            log.warning("REJECTED %s: announced id %r but answers as %r", s.url, s.device_id, info.id)
            self.rejected[s.url] = time.monotonic()
            return
        self.rejected.pop(s.url, None)
        old = self.devices.get(info.id)
        if old is not None and old.state == "up" and old.sighting != s.name:
            log.warning("device id %s seen at %s while up at %s: keeping the first", info.id, s.url, old.url)
            return
        self.devices[info.id] = DeviceRecord(info, s.url, s.source, s.name, client, telemetry)
        self.version += 1
        models = ", ".join(f"{m.name}/{m.backend}" for m in info.models)
        log.info("device %s (%s) admitted via %s at %s serving %s", info.id, info.kind, s.source, s.url, models)

    # --- heartbeats ------------------------------------------------------------------
    async def _beat(self, rec: DeviceRecord) -> None:
        try:
            rec.telemetry = await rec.client.get("/v1/telemetry", Telemetry, max(0.5, self.cfg.heartbeat_s))
        except (Unreachable, Refused, NotTrusted) as e:
            self.missed(rec, str(e))
            return
        if rec.state == "down":
            log.info("device %s is back after %d missed heartbeats", rec.id, rec.missed)
        rec.missed, rec.state = 0, "up"
        self.version += 1  # new telemetry: load, speed and energy figures moved

    async def _check(self, rec: CloudRecord) -> None:
        key = rec.endpoint.api_key
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key and not rec.endpoint.extensions else {}
        try:
            async with self.session.get(
                rec.health_url(), headers=headers, timeout=aiohttp.ClientTimeout(total=max(0.5, self.cfg.heartbeat_s))
            ) as resp:
                ok, why = resp.status == 200, f"health check answered HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            ok, why = False, f"health check failed: {type(e).__name__} {e}"
        if ok:
            if rec.state == "down":
                log.info("cloud endpoint %s is back after %d failed health checks", rec.name, rec.missed)
                self.version += 1
            rec.missed, rec.state, rec.last_error = 0, "up", None
        else:
            self.cloud_missed(rec, why)

    def cloud_missed(self, rec: CloudRecord, why: str) -> None:
        """A health check failed (or a request could not reach it): count it against the endpoint."""
        rec.missed += 1
        rec.last_error = why
        if rec.missed >= self.cfg.down_after_missed and rec.state == "up":
            rec.state = "down"
            self.version += 1
            log.warning("cloud endpoint %s is down (%s)", rec.name, why)

    def missed(self, rec: DeviceRecord, why: str) -> None:
        """A heartbeat failed (or a stream broke): count it against the device."""
        rec.missed += 1
        if rec.missed >= self.cfg.remove_after_missed:
            self._remove(rec, f"missed {rec.missed} heartbeats")
        elif rec.missed >= self.cfg.down_after_missed and rec.state == "up":
            rec.state = "down"
            self.version += 1
            log.warning("device %s is down (%s)", rec.id, why)

    def _remove(self, rec: DeviceRecord, why: str) -> None:
        if self.devices.get(rec.id) is rec:
            del self.devices[rec.id]
            self.version += 1
            log.warning("device %s removed: %s", rec.id, why)

    async def _heartbeat_loop(self) -> None:
        while True:
            started = time.monotonic()
            beats = [self._beat(rec) for rec in list(self.devices.values())]
            beats += [self._check(rec) for rec in self.clouds.values()]
            await asyncio.gather(*beats)
            registered = {rec.sighting for rec in self.devices.values()}
            for s in list(self.sightings.values()):
                if s.name not in registered:
                    self._spawn(self._consider(s))
            await asyncio.sleep(max(0.0, self.cfg.heartbeat_s - (time.monotonic() - started)))

    # --- lifecycle -------------------------------------------------------------------
    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeat_loop())

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._heartbeat] if self._heartbeat else [])]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def up(self, model: str) -> list[DeviceRecord]:
        return [r for r in self.devices.values() if r.state == "up" and r.model(model) is not None]

    def clouds_up(self, model: str) -> list[CloudRecord]:
        return [c for c in self.clouds.values() if c.state == "up" and model in c.endpoint.models]
