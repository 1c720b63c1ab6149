"""DiSCo's migration controller: when a live answer should move to the other endpoint.

The reader consumes tokens at ``reading_tok_s`` (about 4-5 tokens/s for
people); both endpoints generate faster, so a buffer of generated but not yet
read tokens builds up.  A migration costs time ``t_m`` (the target prefills
prompt + generated tokens, plus a network round trip): it is hidden if the
buffer covers ``reading_tok_s * t_m`` tokens.  It pays if the per-token cost
saved over the estimated remaining tokens beats the target's prefill cost.
No KV is transferred: the target is sent the token ids and prefills them.

A stream that stalls (no token for ``stall_s``) or fails migrates regardless
of cost: that is the failure path.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.disco.cost import CostModel, Side


@dataclass(frozen=True)
class StreamState:
    source: Side
    prompt_tokens: int
    generated: int  # tokens the client has been sent
    since_first_token_s: float  # the reader started at the first token
    remaining_estimate: int  # tokens still to come (e.g. an output-length bound minus generated)


@dataclass(frozen=True)
class MigrationPolicy:
    costs: CostModel
    reading_tok_s: float = 4.5
    stall_s: float = 2.0
    min_generated: int = 4  # do not migrate before the answer has started properly

    def buffer(self, s: StreamState) -> float:
        """Tokens generated but not yet read."""
        return s.generated - self.reading_tok_s * s.since_first_token_s

    def saving(self, s: StreamState) -> float:
        """$ saved by finishing on the other side, net of its prefill."""
        target: Side = "device" if s.source == "server" else "server"
        per_token = self.costs.per_output_token(s.source) - self.costs.per_output_token(target)
        return per_token * s.remaining_estimate - self.costs.cost(target, s.prompt_tokens + s.generated, 0)

    def should_migrate(self, s: StreamState, migration_s: float) -> bool:
        """Migrate now if the buffer hides ``migration_s`` and the move pays."""
        if s.generated < self.min_generated or s.remaining_estimate <= 0:
            return False
        return self.buffer(s) >= self.reading_tok_s * migration_s and self.saving(s) > 0

    def stalled(self, since_last_token_s: float) -> bool:
        return since_last_token_s > self.stall_s
