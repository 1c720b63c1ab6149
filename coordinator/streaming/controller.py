"""The one typed protocol between a live answer and the system that steers it.

A live answer (:mod:`coordinator.streaming.answer`) is the mechanism: it opens
routes, races them, moves generation between endpoints without losing or
repeating a token, and counts what each endpoint did.  A :class:`Controller`
is the policy side, asked three things: where to start (:meth:`~Controller.opening`),
after each token sent and whenever the source fails or stalls whether to move
and where, or to warm an endpoint for a later move (:meth:`~Controller.decide`:
a :class:`Move` or a :class:`Warm`), and at the end what the answer cost
(:meth:`~Controller.settle`, given the :class:`Outcome`).  DiSCo's dispatch and
migration controller is the first implementation (:mod:`coordinator.disco.runtime`).
A controller is called on the event loop for every token: it must be
synchronous and cheap (no I/O, no registry scans).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from coordinator.cluster.placement import Tier
from edgeweave.generation.logprobs import TokenLogprob

Trigger = Literal["token", "failure", "stall"]  # why the answer asks: a token was sent, the source broke or stalled


@dataclass(frozen=True)
class Opening:
    """Where an answer starts: on ``first``'s tiers, in that order (empty: any endpoint, in the placement
    policy's order).  With ``second``, a racer starts on those tiers after ``second_after_s`` unless the
    first has produced a token by then, and the answer keeps whichever token comes first.  A source
    that sends nothing for ``stall_s`` counts as stalled."""

    first: tuple[Tier, ...] = ()
    second: tuple[Tier, ...] | None = None
    second_after_s: float = 0.0
    stall_s: float = math.inf


@dataclass(frozen=True)
class Warming:
    """A warm under way: ``endpoint`` holds ``cached`` tokens of the answer's context (prompt + tokens
    sent) in its prompt cache, as its latest finished round reported (0 before the first)."""

    endpoint: str
    cached: int


@dataclass(frozen=True)
class Progress:
    """The answer as the controller sees it when asked to decide."""

    trigger: Trigger
    source: str  # the endpoint producing it ("device:<id>" / "cloud:<name>")
    sent: int  # tokens the client has been sent
    since_first_s: float  # since the first token was sent (0 before)
    prompt_tokens: int  # as the source reported it (0 until it has)
    warm: Warming | None = None  # the warm under way, if any
    logprob: TokenLogprob | None = None  # the last token sent's, when the answer asked for logprobs


@dataclass(frozen=True)
class Move:
    """Move the answer to ``target``.  With ``stop_source`` the source stops at once (the reader has
    enough buffered to cover the move); if the target then fails, the answer resumes on the source."""

    target: str
    reason: str  # the controller's label, e.g. "cost"; failures and stalls are answered with the trigger
    stop_source: bool = False


@dataclass(frozen=True)
class Warm:
    """Prefill the answer's context on ``target`` in the background (``POST /v1/prefill``), in rounds:
    the prompt and the tokens sent so far, then the tokens sent since, until the answer moves or ends;
    a move there then prefills only what its last round did not cover."""

    target: str


@dataclass(frozen=True)
class WarmRound:
    """One round of a warm: what ``endpoint`` evaluated into its prompt cache, as it reported it."""

    endpoint: str
    context_tokens: int  # the context it holds after the round (prompt + resumed tokens)
    prefilled: int  # of those, evaluated by this round (the rest was cached before)
    energy_j: float  # the endpoint's estimate (0 from a cloud, priced per token instead)


@dataclass(frozen=True)
class Migration:
    source: str
    target: str
    at_token: int  # tokens the client had when the target took over
    delayed_tokens: int  # source tokens the client was not sent (held back): the target regenerated them
    seconds: float  # from the decision to the target's first token
    reason: str


@dataclass(frozen=True)
class Share:
    """One route's part of an answer: every route opened is one (race losers, migration sources and routes that
    broke off before their first token included: they were paid for); an endpoint that refused opened nothing."""

    endpoint: str
    prompt_tokens: int  # what it reported prefilling, resumed tokens included (0 if it did not say)
    resumed: int  # tokens of this answer it was given to prefill after the prompt
    generated: int  # tokens it produced, held-back ones included
    ttft_s: float | None  # from the moment it was asked for to its first token
    cached: int = 0  # of its prompt + resumed tokens, those it held from a warm (not prefilled again)


@dataclass(frozen=True)
class Outcome:
    endpoint: str | None  # who produced the last token (None: no endpoint took the answer)
    shares: tuple[Share, ...]
    migrations: tuple[Migration, ...]
    prompt_tokens: int  # the client's prompt (0 if no endpoint said)
    completion_tokens: int  # tokens the client was sent
    finish_reason: str | None  # None: the answer broke off or the client left
    warms: tuple[WarmRound, ...] = ()  # every warm round that finished (paid for, used or not)


class Controller(Protocol):
    def opening(self) -> Opening: ...

    def decide(self, progress: Progress) -> Move | Warm | None:
        """None: go on where it is (after a failure: give up, the client gets the error); a
        :class:`Warm` is taken only after a token and while no warm is under way."""
        ...

    def settle(self, outcome: Outcome) -> float | None:
        """Account the finished answer; returns what it cost (USD) where known."""
        ...
