"""DiSCo's migration controller: when a live answer should move to the other tier, and when the
other tier should be warmed for it.

The reader consumes tokens at ``reading_tok_s`` (about 4-5 tokens/s for
people); both tiers generate faster, so a buffer of generated but not yet read
tokens builds up.  A migration costs time ``t_m`` (the target prefills what it
does not hold yet, plus a network round trip): it is hidden if the buffer
covers ``reading_tok_s * t_m`` tokens, and then the source is stopped at once
(the reader lives on the buffer meanwhile).  It pays if the per-token cost
saved over the estimated remaining tokens beats the target's prefill.  The
target must also decode at least at reading pace, or the reader would catch
up with it.  No KV is transferred: the target is sent the token ids and
prefills them.  (Failures and stalls move an answer regardless of cost: that
is the mechanism's job, :mod:`coordinator.streaming.answer`.)

Warming (our addition; the paper's target prefills prompt + prefix at the
move): while the source answers, the other tier, otherwise idle, prefills the
prompt and then, round after round, the tokens sent since, into its prompt
cache, so that a move prefills only the last round's tail.  A warm is started
when its expected saving beats its price (:meth:`MigrationPolicy.warm_saving`:
the warm's rounds played forward at the source's pace to the point where a
move would happen, against the lengths of finished answers); the prefill it
did is sunk when a move is priced (:attr:`StreamState.uncached`).  While a
warm is catching up, a move waits until another round would shorten the
move's gap by less than one token (:meth:`MigrationPolicy.caught_up`): the
tokens delayed by a move are then those of one short round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coordinator.cluster.placement import Tier
from coordinator.disco.cost import CostModel

MAX_WARM_ROUNDS = 64  # rounds played forward when pricing a warm (a warm converges geometrically, or never)


def other(tier: Tier) -> Tier:
    return "device" if tier == "cloud" else "cloud"


@dataclass(frozen=True)
class StreamState:
    source: Tier
    prompt_tokens: int
    generated: int  # tokens the client has been sent
    since_first_token_s: float  # the reader started at the first token
    remaining_estimate: float  # tokens still to come (expected)
    target_cached: int = 0  # prompt + answer tokens the target holds already (a warm's completed rounds)
    warming: bool = False  # a warm of the target is under way (its next round will shorten the gap)

    @property
    def uncached(self) -> int:
        """Tokens the target would prefill if the answer moved now."""
        return max(self.prompt_tokens + self.generated - self.target_cached, 0)

    @property
    def source_tok_s(self) -> float:
        """The source's pace as the client received it (0 before two tokens)."""
        if self.generated < 2 or self.since_first_token_s <= 0:
            return 0.0
        return (self.generated - 1) / self.since_first_token_s


@dataclass(frozen=True)
class WarmForecast:
    """A warm played forward: the move it leads to, at ``at_token`` tokens sent, with ``lag`` tokens
    still to prefill then; ``warmed`` tokens prefilled by its rounds before (beyond what the target held)."""

    at_token: float
    lag: float
    warmed: float


@dataclass(frozen=True)
class MigrationPolicy:
    costs: CostModel  # the device side priced for the device the answer would run on
    reading_tok_s: float = 4.5
    min_generated: int = 4  # do not migrate before the answer has started properly

    def buffer(self, s: StreamState) -> float:
        """Tokens generated but not yet read."""
        return s.generated - self.reading_tok_s * s.since_first_token_s

    def saving(self, s: StreamState) -> float:
        """$ saved by finishing on the other tier, net of its prefill of what it does not hold."""
        target = other(s.source)
        per_token = self.costs.per_output_token(s.source) - self.costs.per_output_token(target)
        return per_token * s.remaining_estimate - self.costs.cost(target, s.uncached, 0)

    @staticmethod
    def caught_up(lag: float, source_tok_s: float, prefill_s: Callable[[float], float], per_token_s: float) -> bool:
        """Whether a warm trailing the answer by ``lag`` tokens is as close as it gets: one more round
        (``prefill_s(lag)``, while the source makes ``source_tok_s`` tokens a second) would shorten the
        move's gap by less than one token (``per_token_s``: the target's prefill time per token)."""
        after_round = source_tok_s * prefill_s(lag)
        return source_tok_s * per_token_s * (lag - after_round) < 1.0

    def should_migrate(self, s: StreamState, migration_s: float, target_tok_s: float, waiting: float = 0.0) -> bool:
        """Migrate now if the buffer hides ``migration_s``, the target keeps reading pace, the move pays,
        and no warm under way is worth waiting for (``waiting``: the expected saving of the caught-up
        move it leads to, :meth:`warm_saving` with no first round; while that pays, the shorter gap
        wins)."""
        if s.generated < self.min_generated or s.remaining_estimate <= 0 or target_tok_s < self.reading_tok_s:
            return False
        if waiting > 0:
            return False
        return self.buffer(s) >= self.reading_tok_s * migration_s and self.saving(s) > 0

    def forecast(
        self,
        prompt_tokens: int,
        sent: int,
        source_tok_s: float,
        prefill_s: Callable[[float], float],
        per_token_s: float,
        cached: int = 0,
    ) -> WarmForecast:
        """A warm started now (the target holding ``cached`` tokens already), round after round at the
        source's pace, up to the move it waits for."""
        held, avail, at = float(cached), float(prompt_tokens + sent), float(sent)
        for _ in range(MAX_WARM_ROUNDS):
            lag = avail - held
            if self.caught_up(lag, source_tok_s, prefill_s, per_token_s):
                break
            at += source_tok_s * prefill_s(lag)
            held, avail = avail, prompt_tokens + at
        return WarmForecast(at, avail - held, held - cached)

    def warm_saving(
        self,
        source: Tier,
        forecast: WarmForecast,
        still_running: float,
        remaining_then: float,
        first_round: int,
    ) -> float:
        """Expected $ a warm saves: with probability ``still_running`` the answer is still streaming at the
        forecast move and then finishes its ``remaining_then`` tokens on the other tier; the warm's first
        round (``first_round`` tokens) is paid whatever happens, its later rounds and the move's last
        prefill only if it runs on."""
        target = other(source)
        per_token = self.costs.per_output_token(source) - self.costs.per_output_token(target)
        later = max(forecast.warmed - first_round, 0.0) + forecast.lag
        move = per_token * remaining_then - self.costs.cost(target, round(later), 0)
        return still_running * move - self.costs.cost(target, first_round, 0)
