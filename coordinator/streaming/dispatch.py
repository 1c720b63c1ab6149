"""Dispatch: pick an endpoint for a job with the placement policy and open it.

Candidates are the up devices serving the model and the cloud endpoints
configured for it.  They are tried in the policy's order: a refusal for load
(429) or an unreachable or untrusted endpoint moves on to the next one; a
refusal of the request itself (400, 413, ...) goes back to the client with the
field renamed to the client's API.  Only when every candidate is full does the
client get 429, with the shortest Retry-After any of them gave.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp

from coordinator.cluster.device_client import NotTrusted, Refused, Unreachable
from coordinator.cluster.placement import Candidate, PlacementPolicy, Tier
from coordinator.cluster.registry import DeviceRecord, Registry
from coordinator.streaming.routes import CloudRoute, DeviceRoute, EndpointFailed, Job, Route, open_cloud
from edgeweave.config import CloudEndpoint
from edgeweave.serving.http_errors import ApiError
from edgeweave.wire.protocol import GenerateRequest

log = logging.getLogger("edgeweave.dispatch")
PIN_HEADER = "X-Edgeweave-Endpoint"  # request header: serve on this endpoint only (tests, benchmarks, debugging)


def client_param(device_param: str | None) -> str | None:
    """A device error's field in the client's API (``sampling.max_tokens`` -> ``max_tokens``)."""
    return device_param.removeprefix("sampling.") if device_param else None


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        cloud: list[CloudEndpoint],
        policy: PlacementPolicy,
        session: aiohttp.ClientSession,
    ) -> None:
        self.registry = registry
        self.cloud = {c.name: c for c in cloud}
        self.cloud_in_flight: dict[str, int] = dict.fromkeys(self.cloud, 0)
        self.policy = policy
        self.session = session

    def models(self) -> dict[str, list[str]]:
        """Served model -> endpoints serving it now."""
        out: dict[str, list[str]] = {}
        for rec in self.registry.devices.values():
            if rec.state == "up":
                for m in rec.info.models:
                    out.setdefault(m.name, []).append(f"device:{rec.id}")
        for c in self.cloud.values():
            for m in c.models:
                out.setdefault(m, []).append(f"cloud:{c.name}")
        return out

    def max_context(self, model: str) -> int | None:
        """The largest context any device offers for ``model``; None if a cloud endpoint serves it."""
        if any(model in c.models for c in self.cloud.values()):
            return None
        sizes = [m.context_length for r in self.registry.up(model) if (m := r.model(model))]
        return max(sizes) if sizes else None

    def candidates(self, model: str) -> list[Candidate]:
        out = []
        for rec in self.registry.up(model):
            info = rec.model(model)
            assert info is not None
            out.append(
                Candidate(f"device:{rec.id}", "device", rec.load_of(model), 1 + info.max_queue, rec.decode_tok_s(model))
            )
        for c in self.cloud.values():
            if model in c.models:
                out.append(Candidate(f"cloud:{c.name}", "cloud", self.cloud_in_flight[c.name], None))
        return out

    def tiers(self, model: str) -> set[Tier]:
        """The tiers with an endpoint serving ``model`` now."""
        return {c.tier for c in self.candidates(model)}

    def best(self, model: str, tier: Tier) -> Candidate | None:
        """The policy's first choice on ``tier``."""
        on_tier = {c.endpoint: c for c in self.candidates(model) if c.tier == tier}
        ranked = self.policy.rank(list(on_tier.values()))
        return on_tier[ranked[0]] if ranked else None

    def fallback(self, model: str, endpoint: str) -> str | None:
        """Where an answer on ``endpoint`` would move: the policy's best other endpoint, the other
        tier first (a device's answer goes to the cloud, a cloud answer to a device)."""
        ranked = self.policy.rank([c for c in self.candidates(model) if c.endpoint != endpoint])
        tier = endpoint.split(":", 1)[0]
        return next((e for e in ranked if not e.startswith(tier + ":")), ranked[0] if ranked else None)

    @asynccontextmanager
    async def open(self, job: Job) -> AsyncIterator[Route]:
        candidates = self.candidates(job.model)
        if job.pin is not None:
            candidates = [c for c in candidates if c.endpoint == job.pin]
            if not candidates:
                raise ApiError(404, f"{PIN_HEADER}: {job.pin} is not up serving {job.model}", param=PIN_HEADER)
        if not candidates:
            served = ", ".join(sorted(self.models())) or "none (no device is up)"
            raise ApiError(
                404, f"model {job.model!r} is not served; available: {served}", param="model", code="model_not_found"
            )
        ranked = self.policy.rank(candidates)
        if job.tiers:
            ranked = [e for tier in job.tiers for e in ranked if e.startswith(tier + ":")]
        retry_after: list[float] = []
        for endpoint in ranked:
            tier, name = endpoint.split(":", 1)
            async with AsyncExitStack() as stack:
                try:
                    if tier == "device":
                        route: Route = await self._open_device(stack, self.registry.devices[name], job)
                    else:
                        route = await self._open_cloud(stack, self.cloud[name], job)
                except Refused as e:
                    if e.status == 429:
                        retry_after.append(e.retry_after_s or 1.0)
                        continue
                    if e.status in (401, 403) or e.status >= 500:
                        log.warning("%s refused with HTTP %d: %s", endpoint, e.status, e.error.message)
                        continue
                    raise ApiError(
                        e.status,
                        e.error.message.replace("sampling.", ""),
                        param=client_param(e.error.param),
                        code=e.error.code,
                    ) from None
                except (Unreachable, NotTrusted, EndpointFailed) as e:
                    log.warning("%s could not take a request: %s", endpoint, e)
                    if tier == "device" and name in self.registry.devices:
                        self.registry.missed(self.registry.devices[name], str(e))
                    continue
                except KeyError:
                    continue  # left the registry while we were trying others
                yield route
                return
        if retry_after:
            wait = math.ceil(min(retry_after))
            raise ApiError(
                429,
                f"every endpoint serving {job.model} is at capacity; retry in {wait} s",
                code="capacity",
                headers={"Retry-After": str(wait)},
            )
        raise ApiError(503, f"no endpoint serving {job.model} could be reached", code="unavailable")

    async def _open_device(self, stack: AsyncExitStack, rec: DeviceRecord, job: Job) -> Route:
        req = GenerateRequest(
            model=job.model,
            messages=job.messages,
            prompt=job.prompt,
            sampling=job.sampling,
            clamp_max_tokens=job.fill_context,
            resume_tokens=list(job.resume_tokens),
        )
        events = await stack.enter_async_context(rec.client.generate(req))
        rec.in_flight[job.model] += 1
        stack.callback(_decrement, rec, job.model)
        route = DeviceRoute(f"device:{rec.id}", events)
        await route.start()
        return route

    async def _open_cloud(self, stack: AsyncExitStack, endpoint: CloudEndpoint, job: Job) -> Route:
        resp = await open_cloud(self.session, endpoint, job)
        stack.push_async_callback(_close, resp)
        self.cloud_in_flight[endpoint.name] += 1
        stack.callback(self._cloud_done, endpoint.name)
        return CloudRoute(f"cloud:{endpoint.name}", resp)

    def _cloud_done(self, name: str) -> None:
        self.cloud_in_flight[name] -= 1


def _decrement(rec: DeviceRecord, model: str) -> None:
    rec.in_flight[model] -= 1


async def _close(resp: aiohttp.ClientResponse) -> None:
    resp.close()
