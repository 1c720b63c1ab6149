"""Placement policies: which endpoint serves a request (pure, synchronous).

A policy sees a snapshot of the candidates that serve the requested model and
returns them best first; the coordinator tries them in that order, moving on
when one refuses (429) or cannot be reached.  Policies read no clocks and do
no I/O, so the same object drives the live coordinator and the simulators.

:class:`LeastLoaded` is edge-first: devices with room come first, least
loaded (as a fraction of what they admit) first, faster measured decoding
breaking ties; then cloud endpoints, least loaded first; devices that look
full come last (their load figure may be a heartbeat old).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Tier = Literal["device", "cloud"]


@dataclass(frozen=True)
class Candidate:
    endpoint: str  # device id or cloud endpoint name
    tier: Tier
    in_flight: int  # requests running or queued there, as best known
    capacity: int | None  # requests it admits at once; None when it does not say
    decode_tok_s: float = 0.0  # measured; 0 when unknown

    @property
    def utilisation(self) -> float:
        return self.in_flight / self.capacity if self.capacity else float(self.in_flight)

    @property
    def has_room(self) -> bool:
        return self.capacity is None or self.in_flight < self.capacity


class PlacementPolicy(Protocol):
    name: str

    def rank(self, candidates: Sequence[Candidate]) -> list[str]: ...


class LeastLoaded:
    name = "least-loaded"

    def rank(self, candidates: Sequence[Candidate]) -> list[str]:
        def key(c: Candidate) -> tuple[int, float, float, str]:
            group = 0 if (c.tier == "device" and c.has_room) else 1 if c.tier == "cloud" else 2
            return (group, c.utilisation, -c.decode_tok_s, c.endpoint)

        return [c.endpoint for c in sorted(candidates, key=key)]


POLICIES: dict[str, type[LeastLoaded]] = {LeastLoaded.name: LeastLoaded}
