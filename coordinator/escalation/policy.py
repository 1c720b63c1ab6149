"""The escalation gates: pure, typed, synchronous; the coordinator and the benchmark drive the same objects.

A policy is asked twice: :meth:`EscalationPolicy.route` before anything is generated (a router
may send the question straight to the cloud) and :meth:`EscalationPolicy.escalate` once the device
has answered (re-answer on the cloud?).  :meth:`EscalationPolicy.wants_score` says which
uncertainty score, if any, the device must return with its answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from edgeweave.wire.uncertainty import UncertaintyRequest

Where = Literal["device", "cloud"]


@dataclass(frozen=True)
class Question:
    prompt_chars: int
    prompt_tokens: int | None = None


@dataclass(frozen=True)
class DeviceAnswer:
    question: Question
    completion_tokens: int
    score: float | None  # the gate's uncertainty score (None: not scored)
    finish_reason: str | None = None


class EscalationPolicy(Protocol):
    name: str

    def route(self, q: Question) -> Where: ...

    def escalate(self, a: DeviceAnswer) -> bool: ...

    def wants_score(self) -> UncertaintyRequest | None: ...


class UncertaintyGate:
    """Escalate when the device's answer scores above ``threshold`` (higher: more likely wrong)."""

    def __init__(self, request: UncertaintyRequest, threshold: float) -> None:
        self.request = request
        self.threshold = threshold
        self.name = f"gate:{request.method}"

    def route(self, q: Question) -> Where:
        return "device"

    def escalate(self, a: DeviceAnswer) -> bool:
        if a.score is None:
            return True  # the score did not come back: the answer's quality is unknown, the cloud answers
        return a.score > self.threshold

    def wants_score(self) -> UncertaintyRequest | None:
        return self.request


def threshold_for_rate(scores: Sequence[float], rate: float) -> float:
    """The threshold above which a share ``rate`` of ``scores`` lies (ties may push the share above it).
    Rate 0 gives +inf (never escalate), rate 1 gives -inf (always)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if rate == 0.0 or not scores:
        return float("inf")
    if rate == 1.0:
        return float("-inf")
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    k = int(round(rate * len(ordered)))
    if k <= 0:
        return float("inf")
    return float(ordered[k]) if k < len(ordered) else float("-inf")
