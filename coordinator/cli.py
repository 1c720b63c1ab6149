"""The coordinator's verbs (an ``edgeweave.cli`` entry point): ``coordinator serve --config FILE``
runs it; ``status --url URL --api-key KEY`` shows what a running one sees (:mod:`coordinator.status`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from typing import Any

from edgeweave.cli.model_verbs import add_serve_verb

API_KEY_ENV = "EDGEWEAVE_API_KEY"


def _server() -> Callable[[Any], Awaitable[None]]:
    from coordinator.main import serve_coordinator

    return serve_coordinator


def _cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from coordinator.status import fetch_status, render

    render(fetch_status(args.url, args.api_key), Console())
    return 0


def add_verbs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    add_serve_verb(sub, parser_class, "coordinator", "the coordinator", _server)
    p = sub.add_parser("status", help="devices, cloud endpoints and models as a running coordinator sees them")
    p.add_argument("--url", required=True, help="the coordinator's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument(
        "--api-key", default=os.environ.get(API_KEY_ENV, ""), help=f"a client API key (default: ${API_KEY_ENV})"
    )
    p.set_defaults(func=_cmd_status)
