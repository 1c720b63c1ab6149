"""Dispatch: pick an endpoint for a job with the placement policy and open a route there.

Candidates are the up devices serving the model and the cloud endpoints
serving it that pass their health checks (:mod:`coordinator.cluster.registry`).
They are tried in the policy's order: a refusal for load
(429) or an unreachable or untrusted endpoint moves on to the next one; a
refusal of the request itself (400, 413, ...) goes back to the client with the
field renamed to the client's API.  Only when every candidate is full does the
client get 429, with the shortest Retry-After any of them gave; when none
could be reached, or every cloud endpoint configured for the model is down,
503.  The ranking that streaming answers consult on every token
(:meth:`Dispatcher.best`, :meth:`Dispatcher.fallback`) is cached per model
until the registry's version moves.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import AsyncExitStack

import aiohttp

from coordinator.cluster.device_client import NotTrusted, Refused, Unreachable
from coordinator.cluster.placement import Candidate, PlacementPolicy, Tier
from coordinator.cluster.registry import CloudRecord, DeviceRecord, Registry
from coordinator.streaming.routes import CloudRoute, DeviceRoute, EndpointFailed, Job, Route, open_cloud
from edgeweave.config import CloudEndpoint
from edgeweave.serving.http_errors import ApiError
from edgeweave.wire.client import WireClient
from edgeweave.wire.protocol import GenerateRequest, PrefillRequest, PrefillResult

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
        self.policy = policy
        self.session = session
        self._ranked: dict[str, tuple[int, list[Candidate]]] = {}  # model -> (registry version, ranked candidates)

    def models(self) -> dict[str, list[str]]:
        """Served model -> endpoints serving it now (devices up, cloud endpoints passing their health checks)."""
        out: dict[str, list[str]] = {}
        for rec in self.registry.devices.values():
            if rec.state == "up":
                for m in rec.info.models:
                    out.setdefault(m.name, []).append(f"device:{rec.id}")
        for c in self.registry.clouds.values():
            if c.state == "up":
                for m in c.endpoint.models:
                    out.setdefault(m, []).append(f"cloud:{c.name}")
        return out

    def max_context(self, model: str) -> int | None:
        """The largest context any device offers for ``model``; None if a cloud endpoint serves it."""
        if any(model in c.models for c in self.cloud.values()):
            return None
        sizes = [m.context_length for r in self.registry.up(model) if (m := r.model(model))]
        return max(sizes) if sizes else None

    def candidates(self, model: str) -> list[Candidate]:
        """The endpoints serving ``model`` now, with their load as of this moment."""
        out = []
        for rec in self.registry.up(model):
            info = rec.model(model)
            assert info is not None
            out.append(
                Candidate(
                    f"device:{rec.id}",
                    "device",
                    rec.load_of(model),
                    info.slots + info.max_queue,
                    rec.decode_tok_s(model),
                )
            )
        for c in self.registry.clouds_up(model):
            out.append(Candidate(f"cloud:{c.name}", "cloud", c.in_flight, None))
        return out

    def ranked(self, model: str) -> list[Candidate]:
        """The candidates best first, as of the registry's last change (what per-token decisions read:
        refreshed when the registry's version moves, not per call)."""
        cached = self._ranked.get(model)
        if cached is None or cached[0] != self.registry.version:
            by_endpoint = {c.endpoint: c for c in self.candidates(model)}
            cached = (self.registry.version, [by_endpoint[e] for e in self.policy.rank(list(by_endpoint.values()))])
            self._ranked[model] = cached
        return cached[1]

    def tiers(self, model: str) -> set[Tier]:
        """The tiers with an endpoint serving ``model`` now."""
        return {c.tier for c in self.ranked(model)}

    def best(self, model: str, tier: Tier) -> Candidate | None:
        """The policy's first choice on ``tier``."""
        return next((c for c in self.ranked(model) if c.tier == tier), None)

    def fallback(self, model: str, endpoint: str) -> str | None:
        """Where an answer on ``endpoint`` would move: the policy's best other endpoint, the other
        tier first (a device's answer goes to the cloud, a cloud answer to a device)."""
        ranked = [c for c in self.ranked(model) if c.endpoint != endpoint]
        tier = endpoint.split(":", 1)[0]
        return next((c.endpoint for c in ranked if c.tier != tier), ranked[0].endpoint if ranked else None)

    async def open(self, job: Job) -> Route:
        """A route for ``job`` on the first candidate, in the policy's order, that takes it."""
        asked_at = time.monotonic()
        candidates = self.candidates(job.model)
        if job.pin is not None:
            candidates = [c for c in candidates if c.endpoint == job.pin]
            if not candidates:
                raise ApiError(404, f"{PIN_HEADER}: {job.pin} is not up serving {job.model}", param=PIN_HEADER)
        if not candidates:
            if any(job.model in c.models for c in self.cloud.values()):
                raise ApiError(503, f"every endpoint serving {job.model} is down", code="unavailable")
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
            stack = AsyncExitStack()
            try:
                if tier == "device":
                    return await self._open_device(stack, self.registry.devices[name], job, asked_at)
                return await self._open_cloud(stack, self.registry.clouds[name], job, asked_at)
            except Refused as e:
                await stack.aclose()
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
                await stack.aclose()
                log.warning("%s could not take a request: %s", endpoint, e)
                if tier == "device" and name in self.registry.devices:
                    self.registry.missed(self.registry.devices[name], str(e))
                elif tier == "cloud" and isinstance(e, Unreachable):
                    self.registry.cloud_missed(self.registry.clouds[name], str(e))
                continue
            except KeyError:
                await stack.aclose()
                continue  # left the registry while we were trying others
            except BaseException:
                await stack.aclose()
                raise
        if retry_after:
            wait = math.ceil(min(retry_after))
            raise ApiError(
                429,
                f"every endpoint serving {job.model} is at capacity; retry in {wait} s",
                code="capacity",
                headers={"Retry-After": str(wait)},
            )
        raise ApiError(503, f"no endpoint serving {job.model} could be reached", code="unavailable")

    async def prefill(self, job: Job) -> PrefillResult:
        """Evaluate ``job``'s context (prompt + resume tokens) into the prompt cache of ``job.pin``
        (``POST /v1/prefill``); nothing is generated.  Refusals and failures raise as the wire's errors."""
        assert job.pin is not None, "a prefill names its endpoint"
        tier, name = job.pin.split(":", 1)
        req = PrefillRequest(
            model=job.model, messages=job.messages, prompt=job.prompt, resume_tokens=list(job.resume_tokens)
        )
        if tier == "device":
            rec = self.registry.devices.get(name)
            if rec is None:
                raise EndpointFailed(f"{job.pin} left the registry")
            return await rec.client.wire.prefill(req)
        endpoint = self.cloud.get(name)
        if endpoint is None or not endpoint.extensions:
            raise EndpointFailed(f"{job.pin} is not an edgeweave cloud server: it cannot prefill")
        key = endpoint.api_key.get_secret_value() if endpoint.api_key else None
        return await WireClient(self.session, str(endpoint.url), api_key=key).prefill(req, path="/prefill")

    async def _open_device(self, stack: AsyncExitStack, rec: DeviceRecord, job: Job, asked_at: float) -> Route:
        req = GenerateRequest(
            model=job.model,
            messages=job.messages,
            prompt=job.prompt,
            sampling=job.sampling,
            clamp_max_tokens=job.fill_context,
            resume_tokens=list(job.resume_tokens),
            uncertainty=job.uncertainty,
        )
        events = await stack.enter_async_context(rec.client.generate(req))
        rec.in_flight[job.model] += 1
        stack.callback(_decrement, rec, job.model)
        route = DeviceRoute(f"device:{rec.id}", job, stack, asked_at, events)
        await route.start()
        return route

    async def _open_cloud(self, stack: AsyncExitStack, rec: CloudRecord, job: Job, asked_at: float) -> Route:
        resp = await open_cloud(self.session, rec.endpoint, job)
        stack.push_async_callback(_close, resp)
        rec.in_flight += 1
        stack.callback(_cloud_done, rec)
        return CloudRoute(f"cloud:{rec.name}", job, stack, asked_at, resp)


def _decrement(rec: DeviceRecord, model: str) -> None:
    rec.in_flight[model] -= 1


def _cloud_done(rec: CloudRecord) -> None:
    rec.in_flight -= 1


async def _close(resp: aiohttp.ClientResponse) -> None:
    resp.close()
