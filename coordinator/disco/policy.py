"""DiSCo as one policy object: plans, migration decisions and cost accounting (pure, synchronous).

The coordinator asks it, for each chat request, which tier answers
(:meth:`DiscoPolicy.plan`: one tier, or a race of both with the second tier
starting after a wait), while streaming whether the answer should move
(:meth:`DiscoPolicy.should_migrate`), and feeds it what it measured: TTFTs
per tier, finished answers' lengths, each endpoint's share of the cost.  The
benchmark drives the same object with simulated time.  State is kept per
model: a dispatch controller (:mod:`coordinator.disco.dispatch_policy`) on the
prompt lengths offered so far, and the completion lengths that give the
remaining-length estimate a migration is priced on.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from coordinator.cluster.placement import Tier
from coordinator.disco.cost import CostModel, DeviceEnergy, Spend
from coordinator.disco.dispatch_policy import DeviceConstrained, DeviceTTFT, ServerConstrained, ServerTTFT
from coordinator.disco.migration import MigrationPolicy, StreamState, other
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


@dataclass
class _ModelState:
    controller: DeviceConstrained | ServerConstrained
    outputs: OutputLengths = field(default_factory=OutputLengths)


class DiscoPolicy:
    def __init__(self, cfg: DiscoConfig) -> None:
        self.cfg = cfg
        self.spend = Spend.empty()
        self._models: dict[str, _ModelState] = {}

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
        jpt = self.cfg.default_joules_per_token
        energy = device or DeviceEnergy(jpt, jpt)
        return CostModel(self.cfg.usd_per_prompt_token, self.cfg.usd_per_output_token, energy, self.cfg.usd_per_joule)

    def charge(
        self,
        tier: Tier,
        prompt_tokens: int,
        output_tokens: int,
        resumed: int = 0,
        device: DeviceEnergy | None = None,
    ) -> float:
        """Account one endpoint's part of an answer (``device``: that device's energy); returns $."""
        return self.spend.charge(self.costs(device), tier, prompt_tokens, output_tokens, resumed)

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
    ) -> bool:
        """Whether an answer streaming from ``source`` should move to the other tier now (for cost);
        ``device`` is the energy of the device involved, source or target."""
        st = self._models.get(model)
        if not self.cfg.migrate or st is None:
            return False
        remaining = st.outputs.remaining(sent, max_tokens)
        s = StreamState(source, prompt_tokens, sent, since_first_token_s, remaining)
        ctl = st.controller
        migration_s = ctl.device(prompt_tokens + sent) if source == "cloud" else ctl.server.mean()
        policy = MigrationPolicy(self.costs(device), self.cfg.reading_tok_s)
        return policy.should_migrate(s, migration_s, target_tok_s)
