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
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from coordinator.disco.cost import CostModel, DeviceEnergy, Spend
from coordinator.disco.dispatch_policy import DeviceConstrained, DeviceTTFT, ServerConstrained, ServerTTFT
from coordinator.disco.migration import MigrationPolicy, StreamState, other
from coordinator.placement import Tier
from edgeweave.config import DiscoConfig

Prefer = Literal["device", "cloud", "auto"]
MIN_LENGTHS = 10  # finished answers needed before remaining lengths are estimated (and migrations priced)


@dataclass(frozen=True)
class Plan:
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
    """Completion lengths of the latest finished answers."""

    def __init__(self, window: int = 2000) -> None:
        self._recent: deque[int] = deque(maxlen=window)
        self._sorted: list[int] = []

    def add(self, tokens: int) -> None:
        if len(self._recent) == self._recent.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent[0])]
        self._recent.append(tokens)
        bisect.insort(self._sorted, tokens)

    def remaining(self, generated: int, max_tokens: int) -> float:
        """E[min(L, max_tokens) - generated | L > generated]; 0 while too few answers are known."""
        if len(self._sorted) < MIN_LENGTHS:
            return 0.0
        longer = self._sorted[bisect.bisect_right(self._sorted, generated) :]
        if not longer:
            return 0.0
        return sum(min(n, max_tokens) - generated for n in longer) / len(longer)


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

    def plan(self, model: str, prompt_tokens: int, tiers: Collection[Tier], prefer: Prefer = "auto") -> Plan:
        """Where a request with (about) ``prompt_tokens`` goes, given the tiers serving ``model`` now."""
        if not tiers:
            raise ValueError("no tier serves the model")
        self.spend.offer(prompt_tokens)
        st = self._models.get(model)
        if st is None:
            st = self._state(model, prompt_tokens)  # fitted on this first prompt
        else:
            st.controller.observe_prompt(prompt_tokens)
        if prefer != "auto":
            return Plan(prefer if prefer in tiers else other(prefer))
        if len(tiers) == 1:
            return Plan(next(iter(tiers)))
        d = st.controller.decide(prompt_tokens)
        if d.kind == "device":
            return Plan("device")
        if d.kind == "server":
            return Plan("cloud")
        if d.device_wait_s == 0:
            return Plan("device", "cloud")
        return Plan("cloud", "device", d.device_wait_s)

    def observe_ttft(self, model: str, tier: Tier, prefill_tokens: int, ttft_s: float) -> None:
        st = self._state(model, prefill_tokens)
        if tier == "device":
            st.controller.observe_device(prefill_tokens, ttft_s)
        else:
            st.controller.observe_server(ttft_s)

    def observe_answer(self, model: str, completion_tokens: int) -> None:
        if model in self._models:
            self._models[model].outputs.add(completion_tokens)

    def costs(self, joules_per_token: float | None = None) -> CostModel:
        """The cost model with the device side priced for one device (its measured J/token)."""
        jpt = joules_per_token or self.cfg.default_joules_per_token
        return CostModel(
            self.cfg.usd_per_prompt_token, self.cfg.usd_per_output_token, DeviceEnergy(jpt), self.cfg.usd_per_joule
        )

    def charge(
        self,
        tier: Tier,
        prompt_tokens: int,
        output_tokens: int,
        resumed: int = 0,
        joules_per_token: float | None = None,
    ) -> float:
        """Account one endpoint's part of an answer; returns its cost in $."""
        return self.spend.charge(self.costs(joules_per_token), tier, prompt_tokens, output_tokens, resumed)

    def should_migrate(
        self,
        model: str,
        source: Tier,
        prompt_tokens: int,
        sent: int,
        since_first_token_s: float,
        max_tokens: int,
        target_tok_s: float,
        device_joules_per_token: float | None = None,
    ) -> bool:
        """Whether an answer streaming from ``source`` should move to the other tier now (for cost);
        ``device_joules_per_token`` prices the device involved, source or target."""
        st = self._models.get(model)
        if not self.cfg.migrate or st is None:
            return False
        remaining = st.outputs.remaining(sent, max_tokens)
        s = StreamState(source, prompt_tokens, sent, since_first_token_s, remaining)
        ctl = st.controller
        migration_s = ctl.device(prompt_tokens + sent) if source == "cloud" else ctl.server.mean()
        policy = MigrationPolicy(self.costs(device_joules_per_token), self.cfg.reading_tok_s)
        return policy.should_migrate(s, migration_s, target_tok_s)
