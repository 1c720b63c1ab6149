"""``edgeweave circinus plan SPEC``: plan a workload's queries with Circinus and print, per query,
the plan chosen (each operator's model and tier) with its predicted latency, accuracy and cost, in
a table readable at 80 columns; then why each query not served is not; then each tier's load.

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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from coordinator.circinus.cluster import add_arguments
from edgeweave.errors import UsageError

if TYPE_CHECKING:  # rich and the planner are imported when a command runs, not for --help
    from rich.table import Table

    from coordinator.circinus.planner import Scored
    from coordinator.circinus.spec import Query


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("circinus", help="Circinus: plan compound AI pipelines across device, edge and cloud")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=parser_class)
    v = verbs.add_parser("plan", help="plan every query of a YAML workload spec")
    v.add_argument("spec", help="YAML: pipelines, queries, infrastructure")
    v.add_argument("--k", type=int, help="plans per query handed to the selection (default: every non-dominated)")
    add_arguments(v)
    v.set_defaults(func=cmd_plan)


def plan_table(title: str, queries: Sequence[Query], chosen: Mapping[str, Scored], width: int) -> Table:
    """The served queries, one line per operator (``op=model@tier``), to fit ``width`` columns (80
    and up): the query's name folds, a plan's lines stay whole."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    caption = "lat s: predicted latency; acc: predicted accuracy; $/call: predicted cost"
    table = Table(title=escape(title), caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    lines = {q.id: [f"{c.op}={c.config.model}@{c.tier}" for c in chosen[q.id].plan.choices]
             for q in queries if q.id in chosen}  # fmt: skip
    widest = max((len(line) for plan in lines.values() for line in plan), default=0)
    numbers = (("lat s", 5), ("acc", 5), ("$/call", 7))
    gaps = 2 * (len(numbers) + 2)  # a space each side of every column but the table's two edges, and the edges
    left = width - gaps - widest - sum(w for _, w in numbers)
    table.add_column("query (pipeline)", overflow="fold", max_width=max(8, left))
    table.add_column("plan: op=model@tier", no_wrap=True)
    for col, w in numbers:
        table.add_column(col, justify="right", no_wrap=True, min_width=w)
    for q in queries:
        if q.id in lines:
            s = chosen[q.id]
            row = (f"{s.latency_s:.3f}", f"{s.accuracy:.3f}", f"{s.cost_usd:.2g}")
            table.add_row(escape(f"{q.id}\n({q.pipeline})"), escape("\n".join(lines[q.id])), *row)
    return table


def cmd_plan(args: argparse.Namespace) -> int:
    from rich.console import Console

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
    unserved = {
        q.id: impossible(workload.pipeline(q.pipeline), q.slo, measured.catalog, tiers, profiler)
        or "no capacity left for a plan meeting its SLO"
        for q in workload.queries
        if q.id not in sol.selection.chosen
    }
    console.print(plan_table(f"Circinus plan for {args.spec}", workload.queries, sol.selection.chosen, console.width))
    for q in workload.queries:
        if q.id in unserved:
            console.print(f"{q.id} ({q.pipeline}) not served: {unserved[q.id]}", markup=False)
    offered = sum(q.rate for q in workload.queries)
    used = sol.selection.load
    load = ", ".join(f"{t} {used.get(t, 0.0):.3f}/{tiers.capacity[t]:.3f}" for t in sorted(tiers.capacity))
    console.print(
        f"goodput {sol.selection.goodput:.2f} of {offered:.2f} calls/s; cost ${sol.selection.cost_usd_s:.3g}/s; "
        f"load (compute-s/s used/offered): {load}; planned in {seconds:.2f} s "
        f"({sol.search_steps} search steps, {sol.profiling_steps} profiling runs)"
    )
    return 0
