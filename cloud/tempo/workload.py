"""Mixed SLO workloads from a request trace: Tempo's evaluation setup.

Each arrival of the trace becomes, in a 1:1:1 mix, a chat request (latency
SLO: TTFT 0.8-2 s, TBT 80-100 ms), a tool call (deadline 8-20 s) or the first
call of an agent workflow (compound: a chain of 2-4 calls, or a plan call
fanning out to 2-3 parallel calls and a closing one, all due 8-20 s after the
first call arrives; each later stage starts a short tool time after the
previous stage finished).  Lengths come from the trace's rows, optionally
scaled to a small model's context (:func:`fit_to_context`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgeweave.data.traces import TraceRequest
from edgeweave.wire.slo import AnySlo, CompoundSLO, DeadlineSLO, LatencySLO

TTFT_S = (0.8, 2.0)
TBT_S = (0.08, 0.10)
DEADLINE_S = (8.0, 20.0)
TOOL_S = (0.1, 0.5)


@dataclass(frozen=True)
class Call:
    id: str
    arrival_s: float  # a workflow's later stages: when the trace's arrival was (they start after ``after``)
    prompt_tokens: int
    output_tokens: int
    slo: AnySlo
    after: tuple[str, ...] = ()  # calls that must finish first
    gap_s: float = 0.0  # tool time between the last of those finishing and this call


Lengths = Callable[[TraceRequest], tuple[int, int]]


def trace_lengths(r: TraceRequest) -> tuple[int, int]:
    return r.prompt_tokens, r.output_tokens


def fit_to_context(r: TraceRequest) -> tuple[int, int]:
    """The trace's lengths scaled into a 512-token context (prompt / 12, output / 3, clamped)."""
    return max(8, min(320, r.prompt_tokens // 12)), max(4, min(160, r.output_tokens // 3))


def mixed_workload(
    trace: Sequence[TraceRequest], seed: int = 0, lengths: Lengths = trace_lengths, time_scale: float = 1.0
) -> list[Call]:
    """One arrival per trace row (times relative to the first, multiplied by ``time_scale``)."""
    rng = random.Random(seed)
    t0 = trace[0].arrival_s
    calls: list[Call] = []
    for n, r in enumerate(trace):
        t = (r.arrival_s - t0) * time_scale
        kind = rng.choice(("latency", "deadline", "compound"))
        if kind == "latency":
            slo: AnySlo = LatencySLO(ttft_s=rng.uniform(*TTFT_S), tbt_s=rng.uniform(*TBT_S))
            calls.append(Call(f"c{n}", t, *lengths(r), slo))
        elif kind == "deadline":
            slo = DeadlineSLO(type="deadline", deadline_s=rng.uniform(*DEADLINE_S))
            calls.append(Call(f"d{n}", t, *lengths(r), slo))
        else:
            calls.extend(_workflow(f"w{n}", t, rng, trace, lengths))
    return calls


def _workflow(wid: str, t: float, rng: random.Random, trace: Sequence[TraceRequest], lengths: Lengths) -> list[Call]:
    if rng.random() < 0.5:
        shape = [1] * rng.randint(2, 4)  # a chain: think, call a tool, think, ... answer
    else:
        shape = [1, rng.randint(2, 3), 1]  # plan, parallel calls, combine
    deadline = rng.uniform(*DEADLINE_S)
    calls: list[Call] = []
    before: tuple[str, ...] = ()
    for stage, width in enumerate(shape):
        ids = tuple(f"{wid}.{stage}.{j}" for j in range(width))
        gap = rng.uniform(*TOOL_S) if stage else 0.0
        for cid in ids:
            slo = CompoundSLO(
                type="compound", workflow_id=wid, stage=stage, deadline_s=deadline, last=stage == len(shape) - 1
            )
            calls.append(Call(cid, t, *lengths(rng.choice(trace)), slo, before, gap))
        before = ids
    return calls


class Releases:
    """Which calls become ready as others finish: a workflow's later stages wait for the calls
    they depend on (their arrival is then that finish plus their ``gap_s``)."""

    def __init__(self, calls: Sequence[Call]) -> None:
        self.by_id = {c.id: c for c in calls}
        self._waiting_on = {c.id: len(c.after) for c in calls}
        self._children: dict[str, list[Call]] = {}
        for c in calls:
            for a in c.after:
                self._children.setdefault(a, []).append(c)

    def roots(self) -> list[Call]:
        return [c for c in self.by_id.values() if not c.after]

    def finished(self, call_id: str) -> list[Call]:
        """The calls that ``call_id`` finishing makes ready."""
        ready = []
        for child in self._children.get(call_id, ()):
            self._waiting_on[child.id] -= 1
            if self._waiting_on[child.id] == 0:
                ready.append(child)
        return ready
