"""A discrete-event model of the cloud engine that drives the same policy objects at scale.

Each event is one engine iteration: the live sequences are described as
:class:`~cloud.engine.scheduler.SeqView` exactly as the engine describes
them, the same pure :func:`~cloud.engine.scheduler.schedule` picks the
work under the same token budget, sequence cap and KV blocks, preempted
sequences lose their blocks and are recomputed later (the engine's default),
and the clock advances by the iteration time a
:class:`~cloud.tempo.step_time.StepTime` fitted on the real engine predicts
for that batch.  Workflow calls arrive when the calls they depend on finished
plus their tool time.  Prefix caching is not modelled (trace requests share
no prefixes).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cloud.engine.scheduler import Budget, Policy, SeqView, State, schedule
from cloud.tempo.gain import GainLedger
from cloud.tempo.step_time import StepTime
from cloud.tempo.workload import Call, Releases
from edgeweave.wire.slo import SLO_TYPES, SloType


@dataclass(frozen=True)
class EngineShape:
    max_num_seqs: int
    max_batched_tokens: int
    num_blocks: int
    block_size: int


@dataclass
class _Seq:
    call: Call
    arrival_s: float
    context: int
    state: State = "waiting"
    computed: int = 0
    blocks: int = 0
    times: list[float] = field(default_factory=list)

    def view(self) -> SeqView:
        return SeqView(
            id=self.call.id,
            arrival_s=self.arrival_s,
            state=self.state,
            context_tokens=self.context,
            computed_tokens=self.computed,
            generated_tokens=len(self.times),
            max_tokens=self.call.output_tokens,
            blocks_held=self.blocks,
            blocks_exclusive=self.blocks,
            prompt_tokens=self.call.prompt_tokens,
            slo=self.call.slo,
        )


@dataclass
class SimOutcome:
    policy: str
    ledger: GainLedger
    ttft_s: dict[SloType, list[float]]
    tokens: int
    first_arrival_s: float
    last_arrival_s: float
    end_s: float
    iterations: int
    preemptions: int
    decision_s: float  # wall time spent in the scheduler (policy included)
    saturated_tokens: int  # tokens sampled in iterations that filled the sequence cap or the token budget
    saturated_s: float  # and those iterations' time

    @property
    def saturated_tok_s(self) -> float:
        """The engine's throughput while it had more work than one iteration holds."""
        return self.saturated_tokens / max(self.saturated_s, 1e-9)

    @property
    def throughput_tok_s(self) -> float:
        return self.tokens / max(self.end_s - self.first_arrival_s, 1e-9)


def simulate(calls: Sequence[Call], policy: Policy, shape: EngineShape, step_time: StepTime) -> SimOutcome:
    bs = shape.block_size
    too_big = [c.id for c in calls if math.ceil((c.prompt_tokens + c.output_tokens) / bs) > shape.num_blocks]
    if too_big:
        raise ValueError(f"{len(too_big)} calls (first {too_big[0]}) need more KV blocks than the engine has")
    releases = Releases(calls)
    ready = [(c.arrival_s, i, c.id) for i, c in enumerate(releases.roots())]
    heapq.heapify(ready)
    order = len(ready)
    live: dict[str, _Seq] = {}
    ledger = GainLedger()
    ttft: dict[SloType, list[float]] = {k: [] for k in SLO_TYPES}
    free, now = shape.num_blocks, ready[0][0] if ready else 0.0
    first = last_arrival = now
    iterations = preemptions = tokens = 0
    decision = saturated_s = 0.0
    saturated_tokens = 0
    while ready or live:
        while ready and ready[0][0] <= now:
            t, _, cid = heapq.heappop(ready)
            c = releases.by_id[cid]
            live[cid] = _Seq(c, t, c.prompt_tokens)
            last_arrival = max(last_arrival, t)
            ledger.arrive(c.slo, t)
        if not live:
            now = ready[0][0]
            continue
        t0 = time.perf_counter()
        plan = schedule(
            policy,
            [s.view() for s in live.values()],
            Budget(shape.max_batched_tokens, shape.max_num_seqs, free, bs),
            now,
        )
        decision += time.perf_counter() - t0
        for sid in plan.preempt:
            s = live[sid]
            free += s.blocks
            s.blocks, s.computed, s.state = 0, 0, "waiting"
            preemptions += 1
        if not plan.run:
            if not ready:
                raise RuntimeError(f"the scheduler ran nothing with {len(live)} sequences live and none arriving")
            now = max(now, ready[0][0])
            continue
        batch_tokens = kv = 0
        for sid, n in plan.run:
            s = live[sid]
            need = math.ceil((s.computed + n) / bs) - s.blocks
            free -= need
            s.blocks += need
            kv += s.computed
            s.computed += n
            batch_tokens += n
            s.state = "running"
        dt = step_time(batch_tokens, len(plan.run), kv)
        now += dt
        iterations += 1
        full = len(plan.run) == shape.max_num_seqs or batch_tokens == shape.max_batched_tokens
        sampled = tokens
        for sid, _ in plan.run:
            s = live[sid]
            if s.computed < s.context:
                continue
            s.times.append(now)
            s.context += 1
            tokens += 1
            if len(s.times) < s.call.output_tokens:
                continue
            free += s.blocks
            del live[sid]
            ledger.finish(s.call.slo, s.arrival_s, s.times)
            ttft[s.call.slo.type].append(s.times[0] - s.arrival_s)
            for child in releases.finished(sid):
                heapq.heappush(ready, (now + child.gap_s, order, child.id))
                order += 1
        if full:
            saturated_tokens += tokens - sampled
            saturated_s += dt
    return SimOutcome(
        policy.name, ledger, ttft, tokens, first, last_arrival, now, iterations, preemptions, decision,
        saturated_tokens, saturated_s,
    )  # fmt: skip
