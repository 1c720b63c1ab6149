"""The prompt cache: which tokens each KV-cache slot holds, and which free slot a new context takes.

What llama.cpp's server does with ``cache_prompt`` and its slot similarity, for every runtime:
each slot (one sequence of the runtime's KV cache) remembers the tokens whose keys and values it
holds; a new context goes to the free slot with the longest common prefix and only the rest is
evaluated.  Repeated system prompts, agent loops that resend the conversation so far, and a
migration target warmed by ``POST /v1/prefill`` then cost only their new tokens.

Our choices where llama.cpp's server differs or is silent: ties (including no common prefix at
all) go to the least recently used slot, so an unrelated prompt evicts the oldest cache; a slot
also keeps the logits at the end of its last prefill, so a context equal to a cached prompt (a
repeated prompt, or a generate after a prefill of the same context) evaluates nothing and its
first token comes from exactly the logits a fresh prefill gave.  Otherwise at least the context's
last token is evaluated again, since its logits are needed.

Pure bookkeeping: the runtime's KV cache is written by the caller, which reports each write here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class _Slot:
    tokens: list[int] = field(default_factory=list)  # positions 0.. of this sequence's KV cache
    marked: int = 0  # tokens[:marked] ended a prefill whose last-position logits are kept
    logits: np.ndarray | None = None
    used: int = 0  # logical time of the last placement (least recently used ties)


@dataclass(frozen=True)
class Placement:
    slot: int
    reused: int  # context tokens already in the slot's cache, not evaluated again
    logits: np.ndarray | None  # the context's last logits when nothing needs evaluating


class PromptCache:
    def __init__(self, slots: int) -> None:
        self._slots = [_Slot() for _ in range(slots)]
        self._clock = 0

    def place(self, context: Sequence[int], free: Iterable[int]) -> Placement:
        """The free slot for ``context`` (non-empty) and how much of it is cached there."""
        candidates = list(free)
        if not candidates or not context:
            raise ValueError("placing needs a free slot and a non-empty context")
        shared = {s: common_prefix(self._slots[s].tokens, context) for s in candidates}
        slot = max(candidates, key=lambda s: (shared[s], -self._slots[s].used))
        self._clock += 1
        entry = self._slots[slot]
        entry.used = self._clock
        if shared[slot] == len(context) == entry.marked and entry.logits is not None:
            return Placement(slot, len(context), entry.logits)
        return Placement(slot, min(shared[slot], len(context) - 1), None)

    def wrote(self, slot: int, ids: Sequence[int], start: int, logits: np.ndarray | None = None) -> None:
        """The runtime evaluated ``ids`` at positions ``start..`` of ``slot``; ``logits``: the last
        position's, kept when this ended a prefill."""
        entry = self._slots[slot]
        del entry.tokens[start:]
        entry.tokens.extend(int(i) for i in ids)
        if logits is not None:
            entry.marked, entry.logits = len(entry.tokens), logits
        elif start < entry.marked:
            entry.marked, entry.logits = 0, None

    def forget(self, slot: int) -> None:
        """The slot's KV cache no longer holds what was recorded (overwritten elsewhere, or failed)."""
        self._slots[slot] = _Slot(used=self._slots[slot].used)

    def tokens(self, slot: int) -> list[int]:
        return list(self._slots[slot].tokens)
