"""DiSCo's unified cost: cloud money and device energy on one scale.

The cloud bills tokens (``usd_per_prompt_token``, ``usd_per_output_token``:
what a hosted endpoint charges, or what a GPU-hour works out to per token).
The device pays energy: power times time.  Its marginal joules per decoded
token are measured (:mod:`device.telemetry`: the busy power of the device's
linear power model, ``max_w - idle_w``, over its measured decode speed), and
per prefilled token likewise over its measured prefill speed.  To
carry a profile measured on small models to a bigger one (the benchmark
scales the tiny models to a phone-class one), :class:`ComputeProfile` fits a
token's time as a fixed overhead plus its FLOPs (``2 * parameters`` for a
decoder) over the device's measured FLOP rate; energy follows at the same
busy power.  An exchange rate (``usd_per_joule``: electricity plus battery
wear) joins the two sides.

A warm (the other tier prefilling an answer in the background, so that a move
there prefills only the tail: :mod:`coordinator.disco.migration`) is charged as
the prefill it is, on the tier that did it (:meth:`Spend.charge_warm`); the
endpoint the answer then moves to is charged only for what it did not hold
(``cached``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coordinator.cluster.energy import DeviceEnergy
from coordinator.cluster.placement import Tier


@dataclass(frozen=True)
class ComputeProfile:
    """Seconds per token on one device: ``overhead_s + 2 * parameters / flops_per_s``."""

    overhead_s: float
    flops_per_s: float

    @classmethod
    def fit(cls, samples: Sequence[tuple[int, float]]) -> ComputeProfile:
        """Least squares over (parameters, seconds per token) measured on two or more models."""
        if len({p for p, _ in samples}) < 2:
            raise ValueError("need tokens timed on two or more model sizes")
        slope, intercept = np.polyfit([2.0 * p for p, _ in samples], [s for _, s in samples], 1)
        if slope <= 0:
            raise ValueError("bigger models were not slower: no FLOP rate to fit")
        return cls(float(max(intercept, 0.0)), float(1.0 / slope))

    def seconds(self, parameters: int) -> float:
        return self.overhead_s + 2.0 * parameters / self.flops_per_s


@dataclass(frozen=True)
class CostModel:
    usd_per_prompt_token: float  # cloud
    usd_per_output_token: float  # cloud
    device: DeviceEnergy
    usd_per_joule: float

    def cost(self, tier: Tier, prefill_tokens: int, output_tokens: int) -> float:
        if tier == "cloud":
            return prefill_tokens * self.usd_per_prompt_token + output_tokens * self.usd_per_output_token
        return self.device.joules(prefill_tokens, output_tokens) * self.usd_per_joule

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

    def charge(
        self, costs: CostModel, tier: Tier, prompt_tokens: int, output_tokens: int, resumed: int = 0, cached: int = 0
    ) -> float:
        """Charge one endpoint's part of an answer; ``resumed`` tokens were prefilled too but belong
        to the answer, not the prompt (they do not count against the budget); ``cached`` of the
        prompt + resumed tokens it held already (a warm paid for them) and did not prefill."""
        c = costs.cost(tier, max(prompt_tokens + resumed - cached, 0), output_tokens)
        self.usd[tier] += c
        self.prompt_tokens[tier] += prompt_tokens
        return c

    def charge_warm(self, costs: CostModel, tier: Tier, prefilled: int) -> float:
        """Charge a warm's round: ``prefilled`` tokens evaluated into ``tier``'s prompt cache.  The
        budget counts the prompt once, when (if) the answer moves there."""
        c = costs.cost(tier, prefilled, 0)
        self.usd[tier] += c
        return c

    def budget_used(self, tier: Tier) -> float:
        """E[I(l) * l] / E[l] so far on ``tier``: the fraction of offered prompt tokens it took."""
        return self.prompt_tokens[tier] / max(self.offered_prompt_tokens, 1)
