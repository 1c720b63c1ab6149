"""DiSCo's unified cost: cloud money and device energy on one scale.

The cloud bills tokens (``usd_per_prompt_token``, ``usd_per_output_token``:
what a hosted endpoint charges, or what a GPU-hour works out to per token).
The device pays energy.  Its marginal joules per decoded token are measured
(:mod:`device.telemetry`: busy power from the device's linear power model
over its measured decode speed).  To carry a profile measured on one model to
another (the benchmark scales the tiny model to a phone-class one) a FLOPs
model is used: a decoder token costs ``2 * parameters`` FLOPs and the device's
FLOPs per joule stays what was measured, so joules per token scale with the
parameter count.  Prefill is charged at the same energy per token (it is
faster per token but does the same arithmetic).  An exchange rate
(``usd_per_joule``: electricity plus battery wear) joins the two sides.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.placement import Tier


@dataclass(frozen=True)
class DeviceEnergy:
    joules_per_token: float

    def __post_init__(self) -> None:
        if self.joules_per_token <= 0:
            raise ValueError(f"joules_per_token must be positive, got {self.joules_per_token}")

    @classmethod
    def scaled(cls, joules_per_token: float, measured_parameters: int, parameters: int) -> DeviceEnergy:
        """A profile measured on a ``measured_parameters`` model, for a ``parameters`` model on the
        same device: FLOPs per joule is the device's, FLOPs per token is ``2 * parameters``."""
        if measured_parameters <= 0 or parameters <= 0:
            raise ValueError("parameter counts must be positive")
        flops_per_joule = 2.0 * measured_parameters / joules_per_token
        return cls(2.0 * parameters / flops_per_joule)

    def joules(self, tokens: int) -> float:
        return tokens * self.joules_per_token


@dataclass(frozen=True)
class CostModel:
    usd_per_prompt_token: float  # cloud
    usd_per_output_token: float  # cloud
    device: DeviceEnergy
    usd_per_joule: float

    def cost(self, tier: Tier, prefill_tokens: int, output_tokens: int) -> float:
        if tier == "cloud":
            return prefill_tokens * self.usd_per_prompt_token + output_tokens * self.usd_per_output_token
        return self.device.joules(prefill_tokens + output_tokens) * self.usd_per_joule

    def per_output_token(self, tier: Tier) -> float:
        return self.cost(tier, 0, 1)


@dataclass
class Spend:
    """Cost spent so far per tier, and the prompt tokens each tier processed (the budget's unit)."""

    usd: dict[Tier, float]
    prompt_tokens: dict[Tier, int]
    offered_prompt_tokens: int = 0

    @classmethod
    def empty(cls) -> Spend:
        return cls({"device": 0.0, "cloud": 0.0}, {"device": 0, "cloud": 0})

    def offer(self, prompt_tokens: int) -> None:
        self.offered_prompt_tokens += prompt_tokens

    def charge(self, costs: CostModel, tier: Tier, prompt_tokens: int, output_tokens: int, resumed: int = 0) -> float:
        """Charge one endpoint's part of an answer; ``resumed`` tokens were prefilled too but belong
        to the answer, not the prompt (they do not count against the budget)."""
        c = costs.cost(tier, prompt_tokens + resumed, output_tokens)
        self.usd[tier] += c
        self.prompt_tokens[tier] += prompt_tokens
        return c

    def budget_used(self, tier: Tier) -> float:
        """E[I(l) * l] / E[l] so far on ``tier``: the fraction of offered prompt tokens it took."""
        return self.prompt_tokens[tier] / max(self.offered_prompt_tokens, 1)
