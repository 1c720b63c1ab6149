"""Exact-match accuracy of a model on held-out smart-home commands.

A reply counts only if the greedy generation equals the target string
exactly (the whole JSON tool-call list, or the whole conversational reply).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeweave.data.households import Household, Kind, held_out
from edgeweave.data.smarthome import Example, eval_set

if TYPE_CHECKING:
    from edgeweave.generation.backend import Backend


@dataclass(frozen=True)
class EvalReport:
    exact_match: float
    n: int
    failures: list[tuple[str, str, str]]  # (prompt, expected, got), first few


def exact_match(reply: Callable[[str], str], examples: Sequence[Example], keep_failures: int = 5) -> EvalReport:
    hits = 0
    failures: list[tuple[str, str, str]] = []
    for ex in examples:
        got = reply(ex.prompt)
        if got == ex.target:
            hits += 1
        elif len(failures) < keep_failures:
            failures.append((ex.prompt, ex.target, got))
    return EvalReport(hits / len(examples), len(examples), failures)


def held_out_exact_match(backend: Backend, n: int = 300) -> EvalReport:
    """Exact match of greedy chat replies on the first ``n`` held-out commands."""
    from edgeweave.generation.chat import reply_text

    return exact_match(lambda prompt: reply_text(backend, prompt), eval_set(n))


def household_exact_match(
    reply: Callable[[str], str], h: Household, n: int, kinds: Collection[Kind] | None = None
) -> EvalReport:
    """Exact match of ``reply`` on household ``h``'s first ``n`` distinct held-out prompts (of
    ``kinds`` only, when given; :mod:`edgeweave.data.households`)."""
    return exact_match(reply, held_out(h, n, kinds))
