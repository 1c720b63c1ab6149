"""The per-token escalation: move an answer from the device to the cloud when its predictive entropy spikes.

A cheap stand-in for a full uncertainty score (no extra samples): the device streams each token
with its top-k log-probabilities; the entropy of that step, over the top-k renormalised (a lower
bound on the full distribution's entropy when the tail is spread thinly), is averaged over the last
``window`` tokens, and when it exceeds ``threshold`` nats the answer moves to the cloud mid-answer
(:class:`~coordinator.streaming.controller.Move`; the cloud prefills the prompt and the tokens sent
so far and continues).  A failure or a stall moves the answer too.
"""

from __future__ import annotations

import math
from collections import deque

from coordinator.streaming.controller import Move, Opening, Outcome, Progress, Warm
from edgeweave.generation.logprobs import TokenLogprob


def topk_entropy(step: TokenLogprob) -> float:
    """Entropy (nats) of the step's distribution over its chosen token and top alternatives, renormalised."""
    tokens = {t.id: t.logprob for t in (step, *step.top_logprobs)}
    lp = list(tokens.values())
    top = max(lp)
    p = [math.exp(x - top) for x in lp]
    z = sum(p)
    return -sum(q / z * math.log(q / z) for q in p if q > 0)


class TokenEntropyController:
    """Start on the device; move to ``cloud`` once the windowed top-k entropy exceeds ``threshold``."""

    def __init__(self, cloud: str, threshold: float, window: int = 4, stall_s: float = 10.0) -> None:
        self.cloud = cloud
        self.threshold = threshold
        self.recent: deque[float] = deque(maxlen=window)
        self.stall_s = stall_s
        self.moved_at: int | None = None

    def opening(self) -> Opening:
        return Opening(first=("device",), stall_s=self.stall_s)

    def decide(self, progress: Progress) -> Move | Warm | None:
        if progress.source == self.cloud:
            return None
        if progress.trigger != "token":
            return Move(self.cloud, progress.trigger)
        if progress.logprob is None:
            return None
        self.recent.append(topk_entropy(progress.logprob))
        if len(self.recent) == self.recent.maxlen and sum(self.recent) / len(self.recent) > self.threshold:
            self.moved_at = progress.sent
            return Move(self.cloud, "entropy")
        return None

    def settle(self, outcome: Outcome) -> float | None:
        return None
