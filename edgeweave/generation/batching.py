"""The one generation loop: continuous batching over a runtime's KV-cache slots.

Each :meth:`BatchLoop.step` is one :meth:`~edgeweave.generation.backend.Backend.forward_rows`
call holding, for every answer that just got a slot, its context minus what the prompt cache
(:mod:`edgeweave.generation.prompt_cache`) already holds, and for every decoding answer its one
new token; every answer then samples from its own row's logits (:class:`~edgeweave.generation.answer.Answer`).
Answers join and leave between steps (Orca's iteration-level scheduling, as llama.cpp's server
runs its parallel slots), so a short answer never waits for a long one to finish.  A runtime with
one slot runs the same loop with one answer at a time; ``Backend.stream`` is this loop with one
answer.

A cancelled answer leaves at the start of the next step and its slot is free at once; what its
slot's cache holds stays valid and reusable.  Not thread-safe: one thread drives a loop.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edgeweave.generation.answer import Answer, TokenEvent
from edgeweave.generation.prompt_cache import PromptCache


@dataclass(frozen=True)
class BatchRow:
    """One sequence's share of a batched evaluation step."""

    slot: int  # which of the runtime's KV-cache sequences (0 .. Backend.slots - 1)
    ids: Sequence[int]
    start: int  # position of ids[0]; that slot's cache from here on is overwritten


class RowEvaluator(Protocol):
    slots: int

    def forward_rows(self, rows: Sequence[BatchRow]) -> list[np.ndarray]: ...


@dataclass
class Step:
    events: list[tuple[Answer, TokenEvent]] = field(default_factory=list)
    ended: list[Answer] = field(default_factory=list)  # finished, cancelled or prefilled-only this step


class BatchLoop:
    def __init__(self, runtime: RowEvaluator) -> None:
        self.runtime = runtime
        self.cache = PromptCache(runtime.slots)
        self.waiting: deque[Answer] = deque()
        self.running: dict[int, Answer] = {}  # slot -> answer

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def submit(self, answer: Answer) -> None:
        self.waiting.append(answer)

    def step(self) -> Step:
        """One batched evaluation.  If the runtime fails, every running answer ends with its
        ``error`` set (:meth:`abort`)."""
        out = Step()
        self._drop_cancelled(out)
        rows: list[BatchRow] = []
        fed: list[Answer] = []
        ready: list[tuple[Answer, np.ndarray]] = []  # answers whose logits are at hand
        self._admit(rows, fed, ready)
        prefilling = len(rows)
        for slot, answer in self.running.items():
            if answer.last_token is not None:
                rows.append(BatchRow(slot, [answer.last_token], answer.pos))
                fed.append(answer)
        if rows:
            t0 = time.perf_counter()
            try:
                logits = self.runtime.forward_rows(rows)
            except Exception as e:  # noqa: BLE001 - handed to each answer's consumer
                out.ended.extend(self.abort(e, waiting=False))
                return out
            dt = time.perf_counter() - t0
            for i, (row, answer, row_logits) in enumerate(zip(rows, fed, logits, strict=True)):
                if i < prefilling:
                    self.cache.wrote(row.slot, row.ids, row.start, row_logits)
                    answer.stats.prefill_s += dt
                else:
                    self.cache.wrote(row.slot, row.ids, row.start)
                    answer.stats.decode_s += dt
                    answer.fed()
                answer.stats.busy_s += dt / len(rows)
                ready.append((answer, row_logits))
        for answer, row_logits in ready:
            if not answer.generate:
                self._end(answer, out)
                continue
            event = answer.emit(row_logits)
            out.events.append((answer, event))
            if event.finish_reason is not None:
                self._end(answer, out)
        return out

    def _admit(self, rows: list[BatchRow], fed: list[Answer], ready: list[tuple[Answer, np.ndarray]]) -> None:
        free = [s for s in range(self.runtime.slots) if s not in self.running]
        while self.waiting and free:
            answer = self.waiting.popleft()
            placement = self.cache.place(answer.context, free)
            free.remove(placement.slot)
            self.running[placement.slot] = answer
            answer.stats.cached_tokens = placement.reused
            answer.begin()
            if placement.logits is not None:
                ready.append((answer, placement.logits))
            else:
                rows.append(BatchRow(placement.slot, answer.context[placement.reused :], placement.reused))
                fed.append(answer)

    def _drop_cancelled(self, out: Step) -> None:
        for answer in [a for a in self.waiting if a.cancel.is_set()]:
            self.waiting.remove(answer)
            out.ended.append(answer)
        for slot, answer in list(self.running.items()):
            if answer.cancel.is_set():
                del self.running[slot]
                out.ended.append(answer)

    def _slot_of(self, answer: Answer) -> int:
        return next(s for s, a in self.running.items() if a is answer)

    def _end(self, answer: Answer, out: Step) -> None:
        del self.running[self._slot_of(answer)]
        out.ended.append(answer)

    def abort(self, error: Exception, waiting: bool = True) -> list[Answer]:
        """End every running answer (and, with ``waiting``, every queued one) with ``error``;
        the running ones' slot caches are forgotten, their state being unknown."""
        ended = list(self.running.values()) + (list(self.waiting) if waiting else [])
        for slot in self.running:
            self.cache.forget(slot)
        self.running.clear()
        if waiting:
            self.waiting.clear()
        for answer in ended:
            answer.error = error
        return ended

    def remove(self, answer: Answer) -> None:
        """Take an answer out now, wherever it is (its consumer is gone)."""
        if answer in self.waiting:
            self.waiting.remove(answer)
        elif any(a is answer for a in self.running.values()):
            del self.running[self._slot_of(answer)]
