"""A device's energy per token, as its telemetry measures it (busy watts over tokens per second).

The registry derives it from each device's reports; DiSCo's cost model (:mod:`coordinator.disco.cost`)
prices a device's tokens with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceEnergy:
    joules_per_token: float  # decoded
    joules_per_prefill_token: float

    def __post_init__(self) -> None:
        if self.joules_per_token <= 0 or self.joules_per_prefill_token <= 0:
            raise ValueError(f"joules per token must be positive, got {self}")

    @classmethod
    def measured(cls, busy_w: float, decode_tok_s: float, prefill_tok_s: float) -> DeviceEnergy:
        return cls(busy_w / decode_tok_s, busy_w / prefill_tok_s)

    def joules(self, prefill_tokens: int, output_tokens: int) -> float:
        return prefill_tokens * self.joules_per_prefill_token + output_tokens * self.joules_per_token
