"""The scheduling baselines Tempo is measured against, on the engine's Policy interface.

FCFS (vLLM's default) lives with the scheduler; here:

- :class:`PriorityClasses`: vLLM's priority scheduling with a static class per
  request type (chat first, then agent calls, then tool calls), FCFS within;
- :class:`EDF`: earliest deadline first (a chat request's deadline is its
  next token's due time; an agent call's is its workflow's);
- :class:`SRTF`: shortest predicted remaining output first (SRTF/LTR on the
  same length predictor Tempo uses);
- :class:`LAS`: least attained service first in doubling levels, counted
  per workflow for agent calls (Autellix's program-level attained service).

Every baseline may preempt (what vLLM does when memory runs out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cloud.engine.scheduler import SeqView
from cloud.tempo.remaining import LengthSource
from cloud.tempo.workflows import WorkflowTracker
from edgeweave.wire.slo import AnySlo, DeadlineSLO, LatencySLO, SloType


def slo_of(v: SeqView, default: LatencySLO) -> AnySlo:
    return v.slo if v.slo is not None else default


class _Baseline:
    name = ""

    def __init__(self, default_slo: LatencySLO | None = None) -> None:
        self.default_slo = default_slo or LatencySLO()
        self.workflows = WorkflowTracker()

    def key(self, v: SeqView, now: float) -> float:
        raise NotImplementedError

    def rank(self, seqs: Sequence[SeqView], now: float) -> list[SeqView]:
        self.workflows.observe(seqs, now)
        return sorted(seqs, key=lambda v: (self.key(v, now), v.arrival_s, v.id))

    def may_preempt(self, victim: SeqView, for_seq: SeqView, now: float) -> bool:
        return True


class PriorityClasses(_Baseline):
    name = "priority"
    CLASSES: dict[SloType, int] = {"latency": 0, "compound": 1, "deadline": 2}

    def key(self, v: SeqView, now: float) -> float:
        return self.CLASSES[slo_of(v, self.default_slo).type]


class EDF(_Baseline):
    name = "edf"

    def key(self, v: SeqView, now: float) -> float:
        slo = slo_of(v, self.default_slo)
        if isinstance(slo, LatencySLO):
            return v.arrival_s + slo.ttft_s + v.generated_tokens * slo.tbt_s
        if isinstance(slo, DeadlineSLO):
            return v.arrival_s + slo.deadline_s
        return self.workflows.start(v) + slo.deadline_s


class SRTF(_Baseline):
    name = "srtf"

    def __init__(self, lengths: LengthSource, default_slo: LatencySLO | None = None) -> None:
        super().__init__(default_slo)
        self.lengths = lengths

    def rank(self, seqs: Sequence[SeqView], now: float) -> list[SeqView]:
        left = dict(zip((v.id for v in seqs), self.lengths.remaining(seqs), strict=True))
        return sorted(seqs, key=lambda v: (left[v.id], v.arrival_s, v.id))


class LAS(_Baseline):
    """Autellix's discretized form: queue levels by attained service (doubling from
    ``quantum`` tokens), FCFS within a level, so sequences do not trade places every token."""

    name = "las"

    def __init__(self, quantum: int = 32, default_slo: LatencySLO | None = None) -> None:
        super().__init__(default_slo)
        self.quantum = quantum

    def key(self, v: SeqView, now: float) -> float:
        attained = v.generated_tokens + self.workflows.delivered(v)
        return 0 if attained < self.quantum else math.floor(math.log2(attained / self.quantum)) + 1
