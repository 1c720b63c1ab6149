"""DiSCo's unified cost: server money and device energy on one scale.

The server bills tokens (``server_usd_per_prompt_token``,
``server_usd_per_output_token``: what a hosted endpoint charges or what a
GPU-hour works out to per token).  The device pays energy, from a FLOPs
model: a token costs ``flops_per_token`` (``2 * parameters``, the matmuls of a
decoder), and a joule buys ``flops_per_joule``, derived from the device's
measured profile: its marginal joules per decoded token (busy power over
measured decode speed, :mod:`device.telemetry`) divided into the FLOPs of a
token.  Prefill is charged at the same FLOPs per token (it is faster per
token, but does the same arithmetic).  An exchange rate (``usd_per_joule``:
electricity plus battery wear) joins the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["device", "server"]


@dataclass(frozen=True)
class DeviceEnergy:
    flops_per_token: float
    flops_per_joule: float

    @classmethod
    def from_profile(cls, parameters: int, joules_per_token: float) -> DeviceEnergy:
        """From a model's parameter count and the device's measured marginal J per decoded token."""
        if parameters <= 0 or joules_per_token <= 0:
            raise ValueError("parameters and joules_per_token must be positive")
        flops = 2.0 * parameters
        return cls(flops, flops / joules_per_token)

    def joules(self, tokens: int) -> float:
        return tokens * self.flops_per_token / self.flops_per_joule


@dataclass(frozen=True)
class CostModel:
    server_usd_per_prompt_token: float
    server_usd_per_output_token: float
    device: DeviceEnergy
    usd_per_joule: float

    def server(self, prompt_tokens: int, output_tokens: int) -> float:
        return prompt_tokens * self.server_usd_per_prompt_token + output_tokens * self.server_usd_per_output_token

    def device_usd(self, prompt_tokens: int, output_tokens: int) -> float:
        return self.device.joules(prompt_tokens + output_tokens) * self.usd_per_joule

    def cost(self, side: Side, prompt_tokens: int, output_tokens: int) -> float:
        return (
            self.server(prompt_tokens, output_tokens)
            if side == "server"
            else self.device_usd(prompt_tokens, output_tokens)
        )

    def per_output_token(self, side: Side) -> float:
        return self.cost(side, 0, 1)


@dataclass
class Spend:
    """Cost spent so far, per side, and the prompt tokens each side processed (the budget's unit)."""

    usd: dict[str, float]
    prompt_tokens: dict[str, int]
    offered_prompt_tokens: int = 0

    @classmethod
    def empty(cls) -> Spend:
        return cls({"device": 0.0, "server": 0.0}, {"device": 0, "server": 0})

    def charge(self, model: CostModel, side: Side, prompt_tokens: int, output_tokens: int) -> float:
        c = model.cost(side, prompt_tokens, output_tokens)
        self.usd[side] += c
        self.prompt_tokens[side] += prompt_tokens
        return c

    def budget_used(self, side: Side) -> float:
        """E[I(l) * l] / E[l] so far on ``side``: the fraction of offered prompt tokens it took."""
        return self.prompt_tokens[side] / max(self.offered_prompt_tokens, 1)
