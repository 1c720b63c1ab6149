"""What the engine reports about itself: its occupancy (:class:`EngineStats`, the server's
metrics) and what one iteration computed and how long it took (:class:`StepSample`, from which
:mod:`cloud.tempo.step_time` fits the simulator's clock)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineStats:
    waiting: int
    running: int
    swapped: int
    blocks_total: int
    blocks_free: int
    prefix_hit_blocks: int
    preemptions: int


@dataclass(frozen=True)
class StepSample:
    tokens: int
    seqs: int
    kv_tokens: int
    seconds: float
