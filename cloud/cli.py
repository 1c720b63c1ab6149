"""``edgeweave cloud serve --config FILE``: the cloud service (an ``edgeweave.cli`` entry point)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from edgeweave.cli.model_verbs import add_serve_verb


def _server() -> Callable[[Any], Awaitable[None]]:
    from cloud.server import serve_cloud

    return serve_cloud


def add_verbs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    add_serve_verb(sub, parser_class, "cloud", "the cloud LLM engine", _server)
