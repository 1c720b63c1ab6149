"""``edgeweave dora plan|run``: ask a coordinator to plan a model over its devices, or run a plan.

Prints the Pareto set (each plan's pipelines, micro-batches, predicted
latency, throughput and energy), readable in 80 columns; ``run`` also prints
the batch time measured on the devices.  A refusal from the coordinator, or a
QoE no plan meets, is one line and exit code 2.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TypeVar

from edgeweave.errors import UsageError

if TYPE_CHECKING:  # the wire client imports aiohttp, the table rich: only a command needs them, not --help
    from pydantic import BaseModel
    from rich.table import Table

    from edgeweave.wire.dora import PlanRequest, PlanView

M = TypeVar("M", bound="BaseModel")
TIMEOUT_S = 900.0  # a run of many training steps


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dora", help="Dora: plan and run a model across the cluster's devices")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=parser_class)
    for verb, what in (("plan", "the Pareto set of plans that meet the QoE"), ("run", "run one plan for real")):
        v = verbs.add_parser(verb, help=what)
        v.add_argument("--url", required=True, help="the coordinator's base URL")
        v.add_argument("--api-key", required=True)
        v.add_argument("--model", default="weave-home-device")
        v.add_argument("--training", action="store_true", help="plan training steps instead of inference")
        v.add_argument("--batch", type=int, default=8, help="samples per request / step")
        v.add_argument("--seq-len", type=int, default=32)
        v.add_argument("--max-latency", type=float, help="QoE: seconds per request / step")
        v.add_argument("--min-throughput", type=float, help="QoE: samples per second")
        if verb == "run":
            v.add_argument("--plan", type=int, default=0, help="index in the Pareto set (0: fastest)")
            v.add_argument("--steps", type=int, default=3)
        v.set_defaults(func=cmd_dora)


def _ask(args: argparse.Namespace, path: str, request: PlanRequest, model: type[M]) -> M:
    from edgeweave.wire.client import BlockingClient, Refused, Unreachable

    try:
        return BlockingClient(args.url, api_key=args.api_key).post(path, request, model, TIMEOUT_S)
    except Refused as e:
        raise e.usage_error("request") from None
    except Unreachable as e:
        raise UsageError("--url", f"cannot reach {args.url} ({e})") from None


def plans_table(plans: list[PlanView], title: str) -> Table:
    """The Pareto set, one row per plan and one line per data-parallel pipeline: readable at 80 columns."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    caption = escape("pipelines: device[layers] x samples; mb: micro-batches; all predicted")
    table = Table(title=escape(title), caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("pipelines", overflow="fold", ratio=1)
    for col in ("mb", "latency s", "samples/s", "energy J"):
        table.add_column(col, justify="right", no_wrap=True)
    for i, p in enumerate(plans):
        nums = (str(p.micro_batches), f"{p.latency_s:.4f}", f"{p.throughput:.1f}", f"{p.energy_j:.3f}")
        table.add_row(str(i), escape("\n".join(p.layout())), *nums)
    return table


def cmd_dora(args: argparse.Namespace) -> int:
    from rich.console import Console

    from edgeweave.wire.dora import PlanList, PlanRequest, RunRequest, RunResult

    body = PlanRequest(
        model=args.model,
        training=args.training,
        batch=args.batch,
        seq_len=args.seq_len,
        max_latency_s=args.max_latency,
        min_throughput=args.min_throughput,
    )
    console = Console()
    if args.verb == "plan":
        plans = _ask(args, "/v1/dora/plan", body, PlanList).data
        if not plans:
            raise _unmet(args)
        kind = "training" if args.training else "inference"
        console.print(plans_table(plans, f"{args.model}: {kind}, batch {args.batch}"))
        return 0
    run = RunRequest(**body.model_dump(), plan=args.plan, steps=args.steps)
    done = _ask(args, "/v1/dora/run", run, RunResult)
    m = done.measured
    console.print(f"plan: {' | '.join(done.layout())}, {done.micro_batches} micro-batches", markup=False)
    console.print(f"batch time: predicted {done.latency_s:.4f} s, measured {m.batch_s:.4f} s (median of {m.steps})")
    if m.losses:
        console.print("losses: " + ", ".join(f"{x:.4f}" for x in m.losses))
    return 0


def _unmet(args: argparse.Namespace) -> UsageError:
    """No plan meets the QoE: the error names the target that was asked for."""
    per = "step" if args.training else "request"
    asked = [("--max-latency", f"at most {args.max_latency:g} s per {per}")] if args.max_latency is not None else []
    if args.min_throughput is not None:
        asked.append(("--min-throughput", f"at least {args.min_throughput:g} samples/s"))
    if not asked:
        return UsageError("--model", "no plan fits it on the cluster's devices (not enough memory)")
    return UsageError(asked[0][0], f"no plan meets the QoE ({', '.join(a for _, a in asked)}) on the cluster's devices")
