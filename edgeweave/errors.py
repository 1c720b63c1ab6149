"""User-facing errors: each renders as one line naming the offending input.

The CLI turns any :class:`EdgeweaveError` into that line on stderr and exit
code 2 (no traceback); servers turn them into 4xx JSON bodies.
"""

from __future__ import annotations

from pathlib import Path


class EdgeweaveError(Exception):
    """An error caused by the user's input, not by a bug."""


class ModelFileError(EdgeweaveError):
    """A model file or checkpoint directory that cannot be used."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class UsageError(EdgeweaveError):
    """A bad command-line argument or request field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ConfigError(EdgeweaveError):
    """Every problem found in one config file."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))
