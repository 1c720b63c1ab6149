"""DiSCo's migration controller: when a live answer should move to the other tier.

The reader consumes tokens at ``reading_tok_s`` (about 4-5 tokens/s for
people); both tiers generate faster, so a buffer of generated but not yet read
tokens builds up.  A migration costs time ``t_m`` (the target prefills prompt
+ generated tokens, plus a network round trip): it is hidden if the buffer
covers ``reading_tok_s * t_m`` tokens, and then the source is stopped at once
(the reader lives on the buffer meanwhile).  It pays if the per-token cost
saved over the estimated remaining tokens beats the target's prefill.  The
target must also decode at least at reading pace, or the reader would catch
up with it.  No KV is transferred: the target is sent the token ids and
prefills them.  (Failures and stalls move an answer regardless of cost: that
is the mechanism's job, :mod:`coordinator.streaming.answer`.)
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.cluster.placement import Tier
from coordinator.disco.cost import CostModel


def other(tier: Tier) -> Tier:
    return "device" if tier == "cloud" else "cloud"


@dataclass(frozen=True)
class StreamState:
    source: Tier
    prompt_tokens: int
    generated: int  # tokens the client has been sent
    since_first_token_s: float  # the reader started at the first token
    remaining_estimate: float  # tokens still to come (expected)


@dataclass(frozen=True)
class MigrationPolicy:
    costs: CostModel  # the device side priced for the device the answer would run on
    reading_tok_s: float = 4.5
    min_generated: int = 4  # do not migrate before the answer has started properly

    def buffer(self, s: StreamState) -> float:
        """Tokens generated but not yet read."""
        return s.generated - self.reading_tok_s * s.since_first_token_s

    def saving(self, s: StreamState) -> float:
        """$ saved by finishing on the other tier, net of its prefill."""
        target = other(s.source)
        per_token = self.costs.per_output_token(s.source) - self.costs.per_output_token(target)
        return per_token * s.remaining_estimate - self.costs.cost(target, s.prompt_tokens + s.generated, 0)

    def should_migrate(self, s: StreamState, migration_s: float, target_tok_s: float) -> bool:
        """Migrate now if the buffer hides ``migration_s``, the target keeps reading pace, and the move pays."""
        if s.generated < self.min_generated or s.remaining_estimate <= 0 or target_tok_s < self.reading_tok_s:
            return False
        return self.buffer(s) >= self.reading_tok_s * migration_s and self.saving(s) > 0
