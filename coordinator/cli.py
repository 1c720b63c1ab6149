"""``edgeweave coordinator serve --config FILE``: the coordinator (an ``edgeweave.cli`` entry point)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from edgeweave.cli.model_verbs import add_serve_verb


def _server() -> Callable[[Any], Awaitable[None]]:
    from coordinator.main import serve_coordinator

    return serve_coordinator


def add_verbs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    add_serve_verb(sub, parser_class, "coordinator", "the coordinator", _server)
