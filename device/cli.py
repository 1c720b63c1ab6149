"""``edgeweave device serve --config FILE``: the device daemon (an ``edgeweave.cli`` entry point)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from edgeweave.cli.model_verbs import add_serve_verb


def _server() -> Callable[[Any], Awaitable[None]]:
    from device.daemon import serve_device

    return serve_device


def add_verbs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    add_serve_verb(sub, parser_class, "device", "a device daemon", _server)
