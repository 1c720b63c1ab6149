"""``edgeweave dora plan|run``: ask a coordinator to plan a model over its devices, or run a plan.

Prints the Pareto set (each plan's pipelines, micro-batches, predicted
latency, throughput and energy); ``run`` also prints the batch time measured
on the devices.  A refusal from the coordinator is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from rich.console import Console
from rich.table import Table

from edgeweave.errors import UsageError


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


def _post(url: str, key: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=900) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            err = json.loads(e.read())["error"]
        except (ValueError, KeyError, TypeError):
            raise UsageError("url", f"the coordinator answered HTTP {e.code}") from None
        raise UsageError(err.get("param") or "request", err["message"]) from None
    except (urllib.error.URLError, OSError) as e:
        raise UsageError("url", f"cannot reach {url} ({e})") from None


def _layout(plan: dict[str, Any]) -> str:
    return " | ".join(
        " -> ".join(f"{s['device']}[{s['layers'][0]}:{s['layers'][1]}]" for s in p["stages"]) + f" x{p['samples']}"
        for p in plan["pipelines"]
    )


def cmd_dora(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "model": args.model,
        "training": args.training,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "max_latency_s": args.max_latency,
        "min_throughput": args.min_throughput,
    }
    console = Console()
    if args.verb == "plan":
        plans = _post(args.url, args.api_key, "/v1/dora/plan", body)["data"]
        table = Table(title=f"{args.model}: {'training' if args.training else 'inference'}, batch {args.batch}")
        for col in ("#", "pipelines (device[layers] x samples)", "micro-batches", "latency s", "samples/s", "energy J"):
            table.add_column(col)
        for i, p in enumerate(plans):
            row = (_layout(p), str(p["micro_batches"]), f"{p['latency_s']:.4f}", f"{p['throughput']:.1f}")
            table.add_row(str(i), *row, f"{p['energy_j']:.3f}")
        console.print(table)
        return 0
    done = _post(args.url, args.api_key, "/v1/dora/run", {**body, "plan": args.plan, "steps": args.steps})
    m = done["measured"]
    console.print(f"plan: {_layout(done)}, {done['micro_batches']} micro-batches")
    predicted, measured = done["latency_s"], m["batch_s"]
    console.print(f"batch time: predicted {predicted:.4f} s, measured {measured:.4f} s (median of {m['steps']})")
    if m["losses"]:
        console.print("losses: " + ", ".join(f"{x:.4f}" for x in m["losses"]))
    return 0
