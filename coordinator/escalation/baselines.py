"""The gates an uncertainty gate is measured against: always one tier, random at a rate, a length router."""

from __future__ import annotations

import numpy as np

from coordinator.escalation.policy import DeviceAnswer, Question, Where
from edgeweave.wire.uncertainty import UncertaintyRequest


class AlwaysDevice:
    name = "always-device"

    def route(self, q: Question) -> Where:
        return "device"

    def escalate(self, a: DeviceAnswer) -> bool:
        return False

    def wants_score(self) -> UncertaintyRequest | None:
        return None


class AlwaysCloud(AlwaysDevice):
    name = "always-cloud"

    def route(self, q: Question) -> Where:
        return "cloud"


class RandomGate(AlwaysDevice):
    """Escalate a share ``rate`` of the device's answers at random (the equal-cost baseline of a gate)."""

    def __init__(self, rate: float, seed: int | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        self.rate = rate
        self.name = f"random:{rate:g}"
        self._rng = np.random.default_rng(seed)

    def escalate(self, a: DeviceAnswer) -> bool:
        return bool(self._rng.random() < self.rate)


class LengthRouter(AlwaysDevice):
    """Send prompts longer than ``max_prompt_chars`` straight to the cloud (hard requests are long ones)."""

    def __init__(self, max_prompt_chars: int) -> None:
        self.max_prompt_chars = max_prompt_chars
        self.name = f"length:{max_prompt_chars}"

    def route(self, q: Question) -> Where:
        return "cloud" if q.prompt_chars > self.max_prompt_chars else "device"
