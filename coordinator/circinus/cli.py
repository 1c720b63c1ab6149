"""``edgeweave circinus plan SPEC``: plan a workload's queries with Circinus and print, per query,
the plan chosen (each operator's model and tier) with its predicted latency, accuracy and cost, or
why it is not served; then each tier's load.

Without ``--url`` the operators are measured on this machine (:mod:`coordinator.circinus.measure`)
and the spec's ``infrastructure`` block turns that into tiers (a stated slowdown and price each).
With ``--url`` and ``--api-key`` of a coordinator (the demo cluster: ``edgeweave demo --serve``)
every profiling run is on the cluster's own tiers, relayed by the coordinator
(:mod:`coordinator.circinus.cluster`; ``--tier edge=jetson-1`` overrides which endpoint serves a
tier).  A bad spec or argument is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from coordinator.circinus.cluster import add_arguments
from edgeweave.errors import UsageError


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("circinus", help="Circinus: plan compound AI pipelines across device, edge and cloud")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=parser_class)
    v = verbs.add_parser("plan", help="plan every query of a YAML workload spec")
    v.add_argument("spec", help="YAML: pipelines, queries, infrastructure")
    v.add_argument("--k", type=int, help="plans per query handed to the selection (default: every non-dominated)")
    add_arguments(v)
    v.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from coordinator.circinus.cluster import from_arguments
    from coordinator.circinus.measure import from_infrastructure, measure
    from coordinator.circinus.planner import impossible
    from coordinator.circinus.profiles import Profiler
    from coordinator.circinus.solve import solve
    from coordinator.circinus.spec import load

    if args.k is not None and args.k < 1:
        raise UsageError("--k", "must be at least 1")
    workload = load(args.spec)
    if workload.infrastructure is None:
        raise UsageError(f"{args.spec}: infrastructure", "needed to plan (tiers with capacity, links between them)")
    tiers, speeds = from_infrastructure(workload.infrastructure)
    console = Console()
    attached = from_arguments(args.url, args.api_key, args.tier, tiers.capacity)
    if attached is None:
        with console.status("measuring the operators on this machine"):
            measured = measure(workload, speeds)
    else:
        console.print("tiers: " + ", ".join(f"{t}={attached.tiers.get(t, 'none (not used)')}" for t in tiers.capacity))
        with console.status("profiling the operators on the cluster's tiers"):
            measured = measure(workload, {t: speeds[t] for t in attached.tiers}, on_tiers=attached.executor().time)
    profiler = Profiler(measured.sampler)
    t0 = time.perf_counter()
    sol = solve(workload, measured.catalog, tiers, profiler, k=args.k)
    seconds = time.perf_counter() - t0
    table = Table(title=f"Circinus plan for {args.spec}")
    for col in ("query", "pipeline", "plan", "latency s", "accuracy", "$ / call"):
        table.add_column(col, overflow="fold")
    for q in workload.queries:
        s = sol.selection.chosen.get(q.id)
        if s is None:
            why = impossible(workload.pipeline(q.pipeline), q.slo, measured.catalog, tiers, profiler)
            table.add_row(q.id, q.pipeline, f"not served: {why or 'no capacity left for a plan meeting its SLO'}")
            continue
        plan = "\n".join(f"{c.op}={c.config.model}@{c.tier}" for c in s.plan.choices)
        table.add_row(q.id, q.pipeline, plan, f"{s.latency_s:.3f}", f"{s.accuracy:.3f}", f"{s.cost_usd:.2g}")
    console.print(table)
    offered = sum(q.rate for q in workload.queries)
    used = sol.selection.load
    load = ", ".join(f"{t} {used.get(t, 0.0):.3f}/{tiers.capacity[t]:.3f}" for t in sorted(tiers.capacity))
    console.print(
        f"goodput {sol.selection.goodput:.2f} of {offered:.2f} calls/s; cost ${sol.selection.cost_usd_s:.3g}/s; "
        f"load (compute-s/s used/offered): {load}; planned in {seconds:.2f} s "
        f"({sol.search_steps} search steps, {sol.profiling_steps} profiling runs)"
    )
    return 0
