"""DiSCo as one policy object: plans, migration decisions and cost accounting (pure, synchronous).

The coordinator asks it, for each chat request, which tier answers
(:meth:`DiscoPolicy.plan`: one tier, or a race of both with the second tier
starting after a wait), while streaming whether the answer should move
(:meth:`DiscoPolicy.should_migrate`), and feeds it what it measured: TTFTs
per tier, finished answers' lengths, each endpoint's share of the cost.  The
benchmark drives the same object with simulated time.  State is kept per
model: a dispatch controller (:mod:`coordinator.disco.dispatch_policy`) on the
prompt lengths offered so far, and the completion lengths that give the
remaining-length estimate a migration is priced on.  A warm of the other tier
(:meth:`DiscoPolicy.should_warm`, :mod:`coordinator.disco.migration`) is
decided and priced by the same object, the simulator and the live controller
asking it alike.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

from coordinator.cluster.placement import Tier
from coordinator.disco.cost import CostModel, DeviceEnergy, Spend
from coordinator.disco.dispatch_policy import DeviceConstrained, DeviceTTFT, ServerConstrained, ServerTTFT
from coordinator.disco.migration import MigrationPolicy, StreamState, WarmForecast, other
from edgeweave.config import DiscoConfig

Prefer = Literal["device", "cloud", "auto"]
MIN_LENGTHS = 10  # finished answers needed before remaining lengths are estimated (and migrations priced)


@dataclass(frozen=True)
class DispatchPlan:
    """``first`` starts at once; ``second``, if any, races it from ``second_after_s`` unless
    ``first`` has produced a token by then; the answer keeps whichever token comes first."""

    first: Tier
    second: Tier | None = None
    second_after_s: float = 0.0

    @property
    def label(self) -> str:
        if self.second is None:
            return self.first
        return "race" if self.second_after_s == 0 else f"{self.first}-then-{self.second}"


class OutputLengths:
    """Completion lengths of the latest finished answers (asked about on every streamed token:
    prefix sums make that a pair of binary searches)."""

    def __init__(self, window: int = 2000) -> None:
        self._recent: deque[int] = deque(maxlen=window)
        self._sorted: list[int] = []
        self._prefix: list[int] | None = None  # prefix[i] = sum(sorted[:i]), rebuilt after changes

    def add(self, tokens: int) -> None:
        if len(self._recent) == self._recent.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent[0])]
        self._recent.append(tokens)
        bisect.insort(self._sorted, tokens)
        self._prefix = None

    def still_running(self, generated: float) -> float:
        """P(L > generated) among the finished answers (0 while too few are known)."""
        xs = self._sorted
        if len(xs) < MIN_LENGTHS:
            return 0.0
        return (len(xs) - bisect.bisect_right(xs, generated)) / len(xs)

    def remaining(self, generated: int, max_tokens: int) -> float:
        """E[min(L, max_tokens) - generated | L > generated]; 0 while too few answers are known."""
        xs = self._sorted
        if len(xs) < MIN_LENGTHS:
            return 0.0
        if self._prefix is None:
            self._prefix = [0, *itertools.accumulate(xs)]
        lo = bisect.bisect_right(xs, generated)
        if lo == len(xs) or max_tokens <= generated:
            return 0.0
        hi = max(bisect.bisect_right(xs, max_tokens), lo)  # lengths in (generated, max_tokens] count as they are
        capped = (self._prefix[hi] - self._prefix[lo]) + (len(xs) - hi) * max_tokens
        return capped / (len(xs) - lo) - generated


def cost_moves_allowed(prefer: Prefer, allow_cost_moves: bool, source: Tier) -> bool:
    """A move for cost away from the tier the client prefers only when the request allows it
    (moves towards it, and with no preference, always)."""
    return prefer == "auto" or source != prefer or allow_cost_moves


@dataclass
class _ModelState:
    controller: DeviceConstrained | ServerConstrained
    outputs: OutputLengths = field(default_factory=OutputLengths)


class DiscoPolicy:
    def __init__(self, cfg: DiscoConfig, warm: bool = True) -> None:
        self.cfg = cfg
        self.warm = warm  # warm the other tier when it pays (off: the paper's move, prefilling it all)
        self.spend = Spend.empty()
        self._models: dict[str, _ModelState] = {}
        self._costs: dict[DeviceEnergy | None, CostModel] = {}  # asked for on every streamed token

    def _state(self, model: str, prompt_tokens: int) -> _ModelState:
        st = self._models.get(model)
        if st is None:
            device = DeviceTTFT(0.0, 1.0 / self.cfg.device_prefill_tok_s)
            server = ServerTTFT([self.cfg.cloud_ttft_s])
            ctl: DeviceConstrained | ServerConstrained
            if self.cfg.constrained == "device":
                ctl = DeviceConstrained(self.cfg.budget, device, server, [prompt_tokens], self.cfg.tail)
            else:
                ctl = ServerConstrained(self.cfg.budget, device, server, [prompt_tokens])
            st = self._models[model] = _ModelState(ctl)
        return st

    def plan(self, model: str, prompt_tokens: int, tiers: Collection[Tier], prefer: Prefer = "auto") -> DispatchPlan:
        """Where a request with (about) ``prompt_tokens`` goes, given the tiers serving ``model`` now."""
        if not tiers:
            raise ValueError("no tier serves the model")
        self.spend.offer(prompt_tokens)
        known = model in self._models
        st = self._state(model, prompt_tokens)  # a new model's controller is fitted on this first prompt
        if known:
            st.controller.observe_prompt(prompt_tokens)
        if prefer != "auto":
            return DispatchPlan(prefer if prefer in tiers else other(prefer))
        if len(tiers) == 1:
            return DispatchPlan(next(iter(tiers)))
        d = st.controller.decide(prompt_tokens)
        if d.kind == "device":
            return DispatchPlan("device")
        if d.kind == "server":
            return DispatchPlan("cloud")
        if d.device_wait_s == 0:
            return DispatchPlan("device", "cloud")
        return DispatchPlan("cloud", "device", d.device_wait_s)

    def observe_ttft(self, model: str, tier: Tier, prefill_tokens: int, ttft_s: float) -> None:
        st = self._state(model, prefill_tokens)
        if tier == "device":
            st.controller.observe_device(prefill_tokens, ttft_s)
        else:
            st.controller.observe_server(ttft_s)

    def observe_answer(self, model: str, completion_tokens: int) -> None:
        if model in self._models:
            self._models[model].outputs.add(completion_tokens)

    def costs(self, device: DeviceEnergy | None = None) -> CostModel:
        """The cost model with the device side priced for one device (its measured energy)."""
        model = self._costs.get(device)
        if model is None:
            jpt = self.cfg.default_joules_per_token
            energy = device or DeviceEnergy(jpt, jpt)
            cfg = self.cfg
            model = self._costs[device] = CostModel(
                cfg.usd_per_prompt_token, cfg.usd_per_output_token, energy, cfg.usd_per_joule
            )
        return model

    def charge(
        self,
        tier: Tier,
        prompt_tokens: int,
        output_tokens: int,
        resumed: int = 0,
        device: DeviceEnergy | None = None,
        cached: int = 0,
    ) -> float:
        """Account one endpoint's part of an answer (``device``: that device's energy; ``cached``: tokens
        it held from a warm and did not prefill); returns $."""
        return self.spend.charge(self.costs(device), tier, prompt_tokens, output_tokens, resumed, cached)

    def _target_prefill(self, st: _ModelState, source: Tier) -> tuple[Callable[[float], float], float]:
        """The other tier's prefill time for n tokens, and per token (the cloud's: its measured mean TTFT)."""
        ctl = st.controller
        if source == "cloud":
            return (lambda n: ctl.device(round(n))), ctl.device.per_token_s
        mean = ctl.server.mean()
        return (lambda n: mean), 0.0

    def should_migrate(
        self,
        model: str,
        source: Tier,
        prompt_tokens: int,
        sent: int,
        since_first_token_s: float,
        max_tokens: int,
        target_tok_s: float,
        device: DeviceEnergy | None = None,
        cached: int = 0,
        warming: bool = False,
    ) -> bool:
        """Whether an answer streaming from ``source`` should move to the other tier now (for cost);
        ``device`` is the energy of the device involved, source or target; ``cached``: prompt + answer
        tokens the target holds from a warm, ``warming``: that warm's next round is under way or due."""
        st = self._models.get(model)
        if not self.cfg.migrate or st is None:
            return False
        remaining = st.outputs.remaining(sent, max_tokens)
        if remaining <= 0:
            return False
        s = StreamState(source, prompt_tokens, sent, since_first_token_s, remaining, cached, warming)
        prefill_s, per_token_s = self._target_prefill(st, source)
        policy = MigrationPolicy(self.costs(device), self.cfg.reading_tok_s)
        waiting = 0.0
        if warming and s.source_tok_s > 0:
            f = policy.forecast(prompt_tokens, sent, s.source_tok_s, prefill_s, per_token_s, cached)
            if f.warmed > 0:  # the warm's rounds would still shorten the gap
                waiting = self._expected(st, policy, source, f, sent, max_tokens, 0)
        return policy.should_migrate(s, prefill_s(s.uncached), target_tok_s, waiting)

    @staticmethod
    def _expected(
        st: _ModelState, policy: MigrationPolicy, source: Tier, f: WarmForecast, sent: int, max_tokens: int, first: int
    ) -> float:
        """The expected saving of the move a warm leads to (``first``: its first round's tokens, paid anyway)."""
        if f.at_token >= max_tokens:
            return 0.0
        running = st.outputs.still_running(f.at_token) / max(st.outputs.still_running(sent), 1e-9)
        remaining = st.outputs.remaining(math.ceil(f.at_token), max_tokens)
        return policy.warm_saving(source, f, min(running, 1.0), remaining, first)

    def should_warm(
        self,
        model: str,
        source: Tier,
        prompt_tokens: int,
        sent: int,
        since_first_token_s: float,
        max_tokens: int,
        target_tok_s: float,
        device: DeviceEnergy | None = None,
        cached: int = 0,
    ) -> bool:
        """Whether the other tier (holding ``cached`` tokens of it already) should start prefilling this
        answer in the background now (decided once, at the ``min_generated``-th token, when the source's
        pace is measured): the other tier keeps reading pace, its rounds would catch up with the source
        (played forward at that pace), and the expected saving of the move they lead to beats their
        price."""
        if sent != MigrationPolicy.min_generated or not self.warm or not self.cfg.migrate:
            return False
        st = self._models.get(model)
        if st is None or target_tok_s < self.cfg.reading_tok_s:
            return False
        policy = MigrationPolicy(self.costs(device), self.cfg.reading_tok_s)
        s = StreamState(source, prompt_tokens, sent, since_first_token_s, 0.0)
        if s.source_tok_s <= 0:
            return False
        prefill_s, per_token_s = self._target_prefill(st, source)
        f = policy.forecast(prompt_tokens, sent, s.source_tok_s, prefill_s, per_token_s, cached)
        if f.warmed <= 0:  # its rounds would never shorten a move's gap
            return False
        return self._expected(st, policy, source, f, sent, max_tokens, max(prompt_tokens + sent - cached, 0)) > 0

    def charge_warm(self, tier: Tier, prefilled: int, device: DeviceEnergy | None = None) -> float:
        """Account one warm round (``device``: that device's energy); returns $."""
        return self.spend.charge_warm(self.costs(device), tier, prefilled)
