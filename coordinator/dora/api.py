"""The coordinator's Dora routes: ``POST /v1/dora/plan`` and ``POST /v1/dora/run``.

Both measure the devices that are up (:mod:`coordinator.dora.service`) and
plan with :func:`coordinator.dora.planner.partition`; ``plan`` answers the
Pareto set with each plan's predicted latency, throughput and energy, ``run``
also executes one of them (``plan``: its index) on the devices and reports the
measured batch time next to the prediction; if a device of the plan leaves
mid-run, the run re-plans with Dora's adapter over those left (the first
plan of its mix) and carries on.  The blocking work runs off the event loop.  Bad input is a 400 naming the field.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from coordinator.cluster.registry import Registry
from coordinator.dora.adapter import Adapter, Conditions
from coordinator.dora.partitioner import Estimate, PartitionPlan
from coordinator.dora.planner import partition
from coordinator.dora.profiles import QoE, Workload
from coordinator.dora.service import Member, measure, run
from edgeweave.errors import EdgeweaveError
from edgeweave.serving.http_errors import ApiError, parse_body
from edgeweave.wire.dora import PipelineView, PlanList, PlanRequest, PlanView, RunRequest, RunResult, StageView

REGISTRY = web.AppKey("dora_registry", Registry)


def _members(registry: Registry) -> list[Member]:
    out = []
    for rec in sorted(registry.devices.values(), key=lambda r: r.id):
        if rec.state != "up":
            continue
        t = rec.telemetry
        free_mb = (t.memory_total_mb - t.memory_used_mb) if t is not None else rec.info.memory_mb / 2
        out.append(Member(rec.id, rec.url, int(free_mb * 2**20), rec.info.power_idle_w, rec.info.power_max_w))
    if not out:
        raise ApiError(503, "no device is up to plan over", code="unavailable")
    return out


def _describe(plan: PartitionPlan, est: Estimate) -> PlanView:
    return PlanView(
        pipelines=[
            PipelineView(
                samples=p.samples, stages=[StageView(device=s.device, layers=(s.start, s.end)) for s in p.stages]
            )
            for p in plan.pipelines
        ],
        micro_batches=plan.micro_batches,
        latency_s=est.latency_s,
        throughput=est.throughput,
        energy_j=est.energy_j,
    )


def _json(body: PlanList | RunResult) -> web.Response:
    return web.Response(text=body.model_dump_json(), content_type="application/json")


@dataclass(frozen=True)
class _Planned:
    members: list[Member]
    front: list[tuple[PartitionPlan, Estimate]]
    adapter: Adapter  # for re-planning mid-run, on the same measurements


def _plan(registry: Registry, req: PlanRequest) -> _Planned:
    members = _members(registry)
    try:
        model, devices, net = measure(members, registry.key, req.model, req.seq_len)
    except EdgeweaveError as e:
        raise ApiError(400, str(e), param="model") from None
    qoe, work = QoE(req.max_latency_s, req.min_throughput), Workload(req.training, req.batch)
    return _Planned(members, partition(model, devices, net, work, qoe), Adapter(model, devices, net, work, qoe))


async def plan_route(request: web.Request) -> web.Response:
    req = await parse_body(request, PlanRequest)
    planned = await asyncio.to_thread(_plan, request.app[REGISTRY], req)
    return _json(PlanList(data=[_describe(p, e) for p, e in planned.front]))


async def run_route(request: web.Request) -> web.Response:
    req = await parse_body(request, RunRequest)

    registry = request.app[REGISTRY]

    def present() -> frozenset[str]:
        return frozenset(r.id for r in list(registry.devices.values()) if r.state == "up")

    def go() -> RunResult:
        planned = _plan(registry, req)
        front, net = planned.front, planned.adapter.net
        if req.plan >= len(front):
            raise ApiError(400, f"plan: {req.plan} is past the {len(front)} plans that meet the QoE", param="plan")
        plan, est = front[req.plan]

        def replan(left: frozenset[str]) -> PartitionPlan | None:
            mix = planned.adapter.observe(Conditions(net.shared_bytes_s, left))
            return mix.parts[0][0] if mix else None

        measured = run(
            plan, planned.members, registry.key, req.model, req.training, req.seq_len, req.steps, replan, present
        )
        return RunResult(**_describe(plan, est).model_dump(), measured=measured)

    return _json(await asyncio.to_thread(go))


def add_routes(app: web.Application, registry: Registry) -> None:
    app[REGISTRY] = registry
    app.router.add_post("/v1/dora/plan", plan_route)
    app.router.add_post("/v1/dora/run", run_route)
