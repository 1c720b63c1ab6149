"""Tempo's scheduling policy: service-gain density, windowed batch selection, guarded preemption.

For every live sequence Tempo estimates, from the output-length upper bound
(:mod:`cloud.tempo.remaining`) and the mean iteration time ``tau`` (measured
from the gaps between its own calls, which are the engine's iterations), the
**service gain** it can still deliver if it runs from now on and the time
that takes; **priority** is their ratio, the gain density:

- latency: the remaining tokens that would arrive by their due times
  (``arrival + ttft + i * tbt``) over their generation time;
- deadline: all its tokens if the bound finishes by the deadline (else 0);
- compound: its gain includes the tokens its workflow's earlier calls
  delivered, and is lost only if the bound misses the workflow's deadline;
  its slack is measured to its **stage deadline** (the workflow deadline split
  by the matched stored graph, :mod:`cloud.tempo.workflows`), so the stage
  deadlines pace a workflow without a missed one writing it off.

The time a sequence costs is the engine time it still needs, in iterations
(:meth:`Tempo._work_left`): the prompt not yet prefilled, as its share of an
iteration's token budget, plus one of the batch's seats for each token left
to decode.  (Counting a prefill as one iteration whatever its length, as this
policy first did, prices a 320-token prompt like an 8-token one, though it
takes 62% of an iteration's 512-token budget against a decode's 1/512: on
long-prompt workloads that sold the engine's time too cheaply to long prompts
and Tempo fell behind EDF.)

Just enough bandwidth: a sequence whose slack (due time minus its finish if
it ran now) exceeds the horizon to the next decision loses nothing by waiting,
so its priority is scaled by ``horizon / slack``.  Priorities are recomputed
every ``recompute_every`` iterations, or sooner once half the tightest TTFT
SLO has passed since the last recompute (iterations carrying long prefills
are slow: 50 of them can outlast a first token's due time); new arrivals get
theirs on arrival; the
batch is chosen by the windowed rule: candidates within ``p`` of the B-th
best priority, sorted by length, and the size-B window of largest total
priority runs first.  A running sequence is preempted only when the newcomer's
density beats the victim's stretched by the recompute stall it would suffer.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from cloud.engine.scheduler import SeqView
from cloud.tempo.baselines import slo_of
from cloud.tempo.remaining import LengthSource
from cloud.tempo.workflows import GraphLibrary, WorkflowTracker
from edgeweave.wire.slo import DeadlineSLO, LatencySLO

RECOMPUTE_EVERY = 50
WINDOW_P = 0.95
TAU_SMOOTHING = 0.05  # weight of the newest iteration gap in the running mean


def on_time(first_s: float, tau: float, g: int, r: int, due0_s: float, tbt: float) -> int:
    """Tokens ``g .. g+r-1`` arrive at ``first_s + (i - g) * tau``; token ``i`` is due at
    ``due0_s + i * tbt``: how many are on time."""
    c = first_s - g * tau - due0_s  # on time iff i * (tbt - tau) >= c
    if math.isclose(tbt, tau):
        return r if c <= 0 else 0
    if tbt > tau:
        lo = max(g, math.ceil(c / (tbt - tau) - 1e-9))
        return max(0, g + r - lo)
    hi = min(g + r - 1, math.floor(-c / (tau - tbt) + 1e-9))
    return max(0, hi - g + 1)


def in_time(first_s: float, last_s: float, due_s: float, r: int) -> float:
    """How likely an all-or-nothing request finishes by ``due_s`` if its ``r`` tokens (an upper
    bound) come from ``first_s`` to ``last_s``: 1 if the bound fits, else the share of the
    bound that fits (the bound is a 0.95 quantile: a request it overruns may well be shorter),
    0 once not even its next token would."""
    if last_s <= due_s:
        return 1.0
    if r <= 1 or due_s < first_s:
        return 0.0
    return (1 + (due_s - first_s) / (last_s - first_s) * (r - 1)) / r


class Tempo:
    def __init__(
        self,
        lengths: LengthSource,
        batch: int,
        token_budget: int,
        default_slo: LatencySLO | None = None,
        library: GraphLibrary | None = None,
        tau_s: float = 0.03,
        recompute_every: int = RECOMPUTE_EVERY,
        p: float = WINDOW_P,
        name: str = "tempo",
    ) -> None:
        self.name = name
        self.lengths = lengths
        self.batch = batch
        self.token_budget = token_budget
        self.default_slo = default_slo or LatencySLO()
        self.workflows = WorkflowTracker(library)
        self.tau = tau_s
        self.recompute_every = recompute_every
        self.p = p
        self._prio: dict[str, float] = {}
        self._left: dict[str, int] = {}
        self._work: dict[str, float] = {}
        self._chosen: set[str] = set()
        self._order: list[str] = []  # every scored sequence, most urgent first
        self._arrival: dict[str, float] = {}
        self.recomputed = False  # whether the latest call recomputed every priority
        self._since = recompute_every  # iterations since the last full recompute (first call: now)
        self._recomputed_at = -math.inf
        self._tightest_ttft = math.inf  # the tightest TTFT SLO among the latency requests seen
        self._last_now: float | None = None

    # --- the Policy interface -------------------------------------------------------
    def rank(self, seqs: Sequence[SeqView], now: float) -> list[SeqView]:
        self._clock(now)
        self.workflows.observe(seqs, now)
        by_id = {v.id: v for v in seqs}
        self.recomputed = self._since >= self.recompute_every or now - self._recomputed_at >= self._horizon()
        if self.recomputed:
            self._since, self._recomputed_at = 0, now
            self._prio, self._left, self._work, self._arrival = {}, {}, {}, {}
            self._score(seqs, now)
            self._chosen = self._window(seqs)
            self._order = sorted(by_id, key=self._sort_key)
        else:  # between recomputes: newcomers are scored and merged into the standing order
            new = [v for v in seqs if v.id not in self._prio]
            if new:
                self._score(new, now)
                merged = heapq.merge(self._order, sorted((v.id for v in new), key=self._sort_key), key=self._sort_key)
                self._order = list(merged)
        self._since += 1
        if len(self._order) > 2 * len(seqs) + 1024:  # forget finished sequences
            self._order = [i for i in self._order if i in by_id]
            self._prio = {i: self._prio[i] for i in self._order}
            self._left = {i: self._left[i] for i in self._order}
            self._work = {i: self._work[i] for i in self._order}
            self._arrival = {i: self._arrival[i] for i in self._order}
        return [by_id[i] for i in self._order if i in by_id]

    def _sort_key(self, sid: str) -> tuple[bool, float, float, str]:
        return (sid not in self._chosen, -self._prio[sid], self._arrival[sid], sid)

    def may_preempt(self, victim: SeqView, for_seq: SeqView, now: float) -> bool:
        """Only if the newcomer's gain density beats the victim's once the victim pays the
        work of recomputing its context (its density falls by that much)."""
        work = self._work.get(victim.id, 1.0 / self.batch)
        stall = victim.computed_tokens / self.token_budget
        return self._prio.get(for_seq.id, 0.0) > self._prio.get(victim.id, 0.0) * (work + stall) / work

    # --- estimates ---------------------------------------------------------------------
    def _clock(self, now: float) -> None:
        """Track the mean iteration time from the gaps between calls (idle gaps ignored)."""
        if self._last_now is not None and 0 < now - self._last_now < 10 * self.tau:
            self.tau += TAU_SMOOTHING * (now - self._last_now - self.tau)
        self._last_now = now

    def _horizon(self) -> float:
        """Time to the next full recompute: ``recompute_every`` iterations, but no more than half
        the tightest TTFT SLO (iterations that carry long prefills are long; a first token
        must not come due between two looks)."""
        return min(self.recompute_every * self.tau, self._tightest_ttft / 2)

    def _score(self, seqs: Sequence[SeqView], now: float) -> None:
        if not seqs:
            return
        tau, horizon = self.tau, self._horizon()
        for v, r in zip(seqs, self.lengths.remaining(seqs), strict=True):
            slo = slo_of(v, self.default_slo)
            g = v.generated_tokens
            prefill = math.ceil(max(v.context_tokens - v.computed_tokens - 1, 0) / self.token_budget)
            first = now + (prefill + 1) * tau  # its next token, if it runs from now on
            last = first + (r - 1) * tau
            if isinstance(slo, LatencySLO):
                self._tightest_ttft = min(self._tightest_ttft, slo.ttft_s)
                due0 = v.arrival_s + slo.ttft_s
                gain = on_time(first, tau, g, r, due0, slo.tbt_s)
                slack = due0 + g * slo.tbt_s - first
            elif isinstance(slo, DeadlineSLO):
                due = v.arrival_s + slo.deadline_s
                gain = (g + r) * in_time(first, last, due, r)
                slack = due - last
            else:  # the stage deadline paces the call; only missing the workflow's own voids the gain
                end = self.workflows.start(v) + slo.deadline_s
                gain = (self.workflows.delivered(v) + g + r) * in_time(first, last, end, r)
                slack = self.workflows.stage_deadline(v, now) - last
            work = self._work_left(v, r)
            density = gain / (work * tau)
            self._prio[v.id] = density if slack <= horizon else density * horizon / slack
            self._left[v.id] = r
            self._work[v.id] = work
            self._arrival[v.id] = v.arrival_s

    def _work_left(self, v: SeqView, r: int) -> float:
        """The engine time a sequence still needs, in iterations: its prompt not yet computed
        takes that share of an iteration's token budget, each of its ``r`` decodes one of the
        batch's ``batch`` seats."""
        return max(v.context_tokens - v.computed_tokens - 1, 0) / self.token_budget + r / self.batch

    def _window(self, seqs: Sequence[SeqView]) -> set[str]:
        """The windowed batch rule: within ``p`` of the B-th best, by length, the best window of B."""
        b = self.batch
        if len(seqs) <= b:
            return {v.id for v in seqs}
        prio = self._prio
        ordered = sorted(seqs, key=lambda v: (-prio[v.id], v.arrival_s, v.id))
        kth = prio[ordered[b - 1].id]
        if kth <= 0:
            return {v.id for v in ordered[:b]}
        cands = [v for v in ordered if prio[v.id] >= self.p * kth]
        cands.sort(key=lambda v: (v.context_tokens + self._left[v.id], v.id))
        total = sum(prio[v.id] for v in cands[:b])
        best, best_at = total, 0
        for i in range(b, len(cands)):
            total += prio[cands[i].id] - prio[cands[i - b].id]
            if total > best:
                best, best_at = total, i - b + 1
        return {v.id for v in cands[best_at : best_at + b]}
