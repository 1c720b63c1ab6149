"""DiSCo's dispatch controller: which endpoint answers a chat request, within a budget.

Budget ``b`` bounds the constrained side's share of the offered prompt tokens,
``E[I(l) * l] <= b * E[l]`` (``l`` the prompt length, ``I`` whether that side
runs it).  Profiles: the device's TTFT is predictable, linear in ``l``
(:class:`DeviceTTFT`, least squares on measurements); the server's is not
(queueing, network), so it is kept as an empirical distribution of measured
TTFTs (:class:`ServerTTFT`, a sliding window).

- :class:`DeviceConstrained` (the device's energy is scarce): the server
  always starts; the device starts after a wait ``w(l)`` if the server has
  not produced a token by then.  The budget goes first to the tail (``w`` at
  the server TTFT quantile that the budget, up to ``tail``, pays for), then
  to the mean (prompts short enough that the device beats the server's mean
  TTFT start the device at once, shortest first, while budget remains).
- :class:`ServerConstrained` (server money is scarce): prompts of at least
  ``l_th`` tokens race both endpoints and keep the first token; shorter ones
  run on the device alone; ``l_th`` is the smallest threshold whose long
  prompts fit the budget.

Both refit from the profiles as measurements arrive (``observe_*``): after every one of
the first ``REFIT_EVERY``, then every ``REFIT_EVERY``.
"""

from __future__ import annotations

import abc
import bisect
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

REFIT_EVERY = 50


@dataclass(frozen=True)
class DeviceTTFT:
    intercept_s: float
    per_token_s: float

    def __call__(self, prompt_tokens: int) -> float:
        return self.intercept_s + self.per_token_s * prompt_tokens

    @classmethod
    def fit(cls, samples: Sequence[tuple[int, float]]) -> DeviceTTFT:
        """Least squares over (prompt tokens, TTFT s) pairs; slope and intercept kept >= 0."""
        if len(samples) < 2 or len({n for n, _ in samples}) < 2:
            raise ValueError("need TTFTs measured at two or more prompt lengths")
        slope, intercept = np.polyfit([n for n, _ in samples], [t for _, t in samples], 1)
        if intercept < 0:
            slope, intercept = sum(t for _, t in samples) / max(sum(n for n, _ in samples), 1), 0.0
        return cls(float(max(intercept, 0.0)), float(max(slope, 0.0)))


class ServerTTFT:
    """Measured server TTFTs, the latest ``window`` of them."""

    def __init__(self, samples: Iterable[float], window: int = 2000) -> None:
        self._recent: deque[float] = deque(samples, maxlen=window)
        if not self._recent:
            raise ValueError("need at least one measured server TTFT")
        self._sorted = sorted(self._recent)
        self._sum = math.fsum(self._recent)  # the mean is asked for on every streamed token

    def add(self, ttft_s: float) -> None:
        if len(self._recent) == self._recent.maxlen:
            old = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
            self._sum -= old
        self._recent.append(ttft_s)
        self._sum += ttft_s
        bisect.insort(self._sorted, ttft_s)

    def quantile(self, q: float) -> float:
        """The smallest measured TTFT with at least a fraction ``q`` at or below it."""
        return float(np.quantile(self._sorted, min(max(q, 0.0), 1.0), method="inverted_cdf"))

    def mean(self) -> float:
        return self._sum / len(self._recent)

    def exceeds(self, w: float) -> float:
        """P(server TTFT > w)."""
        return 1.0 - bisect.bisect_right(self._sorted, w) / len(self._sorted)


@dataclass(frozen=True)
class Decision:
    """``server`` / ``device``: that endpoint alone; ``race``: both, keep the first token.
    For a race, ``device_wait_s`` is how long the device waits for the server's first token
    before it starts too (0: at once)."""

    kind: Literal["server", "device", "race"]
    device_wait_s: float = 0.0


class _Controller(abc.ABC):
    def __init__(self, budget: float, device: DeviceTTFT, server: ServerTTFT, lengths: Sequence[int]) -> None:
        if not 0.0 <= budget <= 1.0:
            raise ValueError(f"budget must be within [0, 1], got {budget}")
        if not lengths:
            raise ValueError("need the prompt-length distribution (at least one length)")
        self.budget = budget
        self.device = device
        self.server = server
        self._lengths = sorted(lengths)
        self._device_samples: deque[tuple[int, float]] = deque(maxlen=2000)
        self._seen = 0
        self.refit()

    @abc.abstractmethod
    def refit(self) -> None:
        """Recompute the decision thresholds from the profiles and the budget."""

    def observe_device(self, prompt_tokens: int, ttft_s: float) -> None:
        self._device_samples.append((prompt_tokens, ttft_s))
        self._tick()

    def observe_server(self, ttft_s: float) -> None:
        self.server.add(ttft_s)
        self._tick()

    def observe_prompt(self, prompt_tokens: int) -> None:
        bisect.insort(self._lengths, prompt_tokens)
        if len(self._lengths) > 20_000:
            del self._lengths[:: len(self._lengths) // 10_000]  # thin evenly, keeping the shape
        self._tick()

    def _tick(self) -> None:
        self._seen += 1
        if self._seen <= REFIT_EVERY or self._seen % REFIT_EVERY == 0:  # every time while the profiles are young
            if len({n for n, _ in self._device_samples}) >= 2:
                self.device = DeviceTTFT.fit(list(self._device_samples))
            self.refit()


class DeviceConstrained(_Controller):
    def __init__(
        self, budget: float, device: DeviceTTFT, server: ServerTTFT, lengths: Sequence[int], tail: float = 0.1
    ) -> None:
        self.tail = tail
        super().__init__(budget, device, server, lengths)

    def refit(self) -> None:
        tail_share = min(self.budget, self.tail)
        self.wait_s = self.server.quantile(1.0 - tail_share) if tail_share > 0 else math.inf
        spent = self.server.exceeds(self.wait_s) if tail_share > 0 else 0.0
        left = (self.budget - spent) * sum(self._lengths)
        mean_server = self.server.mean()
        self.at_once_below = 0  # prompts shorter than this start the device at once
        for n in self._lengths:
            extra = (1.0 - spent) * n  # these already used the device with probability `spent`
            if self.device(n) >= mean_server or extra > left:
                self.at_once_below = min(self.at_once_below, n)  # equal lengths decide alike
                break
            left -= extra
            self.at_once_below = n + 1

    def decide(self, prompt_tokens: int) -> Decision:
        if prompt_tokens < self.at_once_below:
            return Decision("race", 0.0)
        if math.isinf(self.wait_s):
            return Decision("server")
        return Decision("race", self.wait_s)


class ServerConstrained(_Controller):
    def refit(self) -> None:
        allowed = self.budget * sum(self._lengths)
        self.threshold = math.inf
        for n in reversed(self._lengths):  # longest first: the device is slowest there
            if n > allowed:
                if self.threshold == n:  # equal lengths decide alike
                    self.threshold = n + 1
                break
            allowed -= n
            self.threshold = n

    def decide(self, prompt_tokens: int) -> Decision:
        return Decision("race", 0.0) if prompt_tokens >= self.threshold else Decision("device")
