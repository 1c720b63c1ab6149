"""The ``edgeweave`` command line: the core's own verbs plus each side's, found by entry point.

The core registers ``train``, ``eval``, ``export``, ``generate`` and ``config check``
(:mod:`edgeweave.cli.model_verbs`); every other verb (``device|coordinator|cloud serve``,
``status``, ``tempo``, ``dora``, ``circinus``, ``demo``) is added by the side that owns it through
an ``edgeweave.cli`` entry point, a function ``(subparsers, parser_class) -> None``.  Modules that
register verbs import nothing heavy at import time: ``edgeweave --help`` and ``config check`` must
answer in well under a second, so a verb imports what it needs when it runs.  Any user error is one
line on stderr (a config file: one line per problem) and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import NoReturn

from edgeweave import __version__
from edgeweave.errors import ConfigError, EdgeweaveError

EXIT_USAGE = 2
GROUP = "edgeweave.cli"


class Parser(argparse.ArgumentParser):
    """Bad arguments exit with code 2 and one line, as every other user error does."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from edgeweave.cli.model_verbs import add_verbs

    parser = Parser(prog="edgeweave", description="edge-first device/cloud ML runtime")
    parser.add_argument("--version", action="version", version=f"edgeweave {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_verbs(sub, Parser)
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        ep.load()(sub, Parser)
    return parser


def _one_line(e: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        err = e.errors()[0]
        return f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
    return " ".join(str(e).split())


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"edgeweave: error: {e.path}: {len(e.problems)} problem(s)", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (EdgeweaveError, ValidationError) as e:
        print(f"edgeweave: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
