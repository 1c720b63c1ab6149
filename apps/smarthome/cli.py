"""``edgeweave demo``: the smart-home demo (an ``edgeweave.cli`` entry point)."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.local:
        from apps.smarthome.demo import run_demo

        return run_demo(args.model)
    from apps.smarthome.cluster_demo import run_cluster_demo

    return run_cluster_demo(serve=args.serve)


def add_verbs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="smart-home demo: a local cluster of device daemons behind a coordinator")
    p.add_argument("--serve", action="store_true", help="start the cluster and keep it running until SIGTERM")
    p.add_argument("--local", action="store_true", help="instead: one model on every backend in this process")
    p.add_argument("--model", default="weave-home-device", help="model for --local")
    p.set_defaults(func=_cmd_demo)
