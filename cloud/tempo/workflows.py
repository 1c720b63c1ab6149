"""Compound requests (Tempo): workflows as dependency graphs, matched to split deadlines.

An agent workflow is a layered dependency graph: its calls at stage ``k``
start when the calls of stage ``k - 1`` have finished (one call per stage is
a chain; several are a fan-out).  Completed workflows are stored as graphs
(per stage: how many calls, their prompt and output tokens, how long the
stage took); a running workflow is matched to the most similar stored graph
by a Gaussian kernel over the stages seen so far, among K-medoids
representatives of the store (python-kmedoids' FasterPAM), and the workflow's
deadline is split into stage deadlines in proportion to the matched graph's
stage times: stage ``k``, starting at ``t_k``, gets
``(end - t_k) * time_k / sum(time_j for j >= k)``.

:class:`WorkflowTracker` is the policies' view of workflows: it watches the
sequences a policy ranks, notices the calls that finished (gone since the
last look) and records completed workflows in the :class:`GraphLibrary`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import kmedoids
import numpy as np

from cloud.engine.scheduler import SeqView
from edgeweave.wire.slo import CompoundSLO

SIGMA = 1.0  # kernel width, in units of the per-stage feature distance (log tokens)
MISSING_STAGE = 4.0  # squared distance charged for a stage one graph has and the other lacks
MAX_GRAPHS = 512
RECLUSTER_EVERY = 32
MAX_OPEN = 10_000


@dataclass(frozen=True)
class WorkflowStage:
    calls: int
    prompt_tokens: float  # mean over the stage's calls
    output_tokens: float
    seconds: float  # first call's arrival to last call's finish

    def features(self, with_output: bool) -> tuple[float, ...]:
        f = (math.log1p(self.calls), math.log1p(self.prompt_tokens))
        return (*f, math.log1p(self.output_tokens)) if with_output else f


@dataclass(frozen=True)
class WorkflowGraph:
    stages: tuple[WorkflowStage, ...]

    def stage_deadline(self, stage: int, start_s: float, end_s: float) -> float:
        """Absolute deadline of ``stage`` (starting at ``start_s``) for a workflow due at ``end_s``."""
        if stage >= len(self.stages) - 1:
            return end_s
        times = [max(s.seconds, 1e-6) for s in self.stages[stage:]]
        return start_s + (end_s - start_s) * times[0] / sum(times)


def distance2(a: Sequence[WorkflowStage], b: Sequence[WorkflowStage], done: int | None = None) -> float:
    """Squared distance over the stages of ``a`` (a running workflow: only its first ``done``
    stages have known outputs) against the same stages of ``b``."""
    done = len(a) if done is None else done
    d = 0.0
    for i, s in enumerate(a):
        if i >= len(b):
            d += MISSING_STAGE
            continue
        fa, fb = s.features(i < done), b[i].features(i < done)
        d += sum((x - y) ** 2 for x, y in zip(fa, fb, strict=True))
    if done == len(a) and len(b) > len(a):
        d += MISSING_STAGE * (len(b) - len(a))
    return d


def similarity(a: Sequence[WorkflowStage], b: Sequence[WorkflowStage], done: int | None = None) -> float:
    return math.exp(-distance2(a, b, done) / (2 * SIGMA**2))


class GraphLibrary:
    """Completed workflow graphs (the latest ``MAX_GRAPHS``) and their K-medoids representatives,
    re-clustered every ``RECLUSTER_EVERY`` additions."""

    def __init__(self, k: int = 8) -> None:
        self.k = k
        self.graphs: list[WorkflowGraph] = []
        self.medoids: list[WorkflowGraph] = []
        self._diss = np.zeros((0, 0))
        self._added = 0

    def add(self, graph: WorkflowGraph) -> None:
        row = np.asarray([distance2(graph.stages, g.stages) for g in self.graphs])
        n = len(self.graphs)
        diss = np.zeros((n + 1, n + 1))
        diss[:n, :n], diss[n, :n], diss[:n, n] = self._diss, row, row
        self.graphs.append(graph)
        self._diss = diss
        if len(self.graphs) > MAX_GRAPHS:
            del self.graphs[0]
            self._diss = self._diss[1:, 1:]
        self._added += 1
        if self._added >= RECLUSTER_EVERY or len(self.medoids) < min(self.k, len(self.graphs)):
            self._recluster()

    def _recluster(self) -> None:
        self._added = 0
        if len(self.graphs) <= self.k:
            self.medoids = list(self.graphs)
            return
        result = kmedoids.fasterpam(self._diss, self.k, init="build", random_state=0, n_cpu=1)
        self.medoids = [self.graphs[int(i)] for i in sorted(result.medoids)]

    def match(self, seen: Sequence[WorkflowStage], done: int) -> WorkflowGraph | None:
        """The stored representative most similar to a running workflow's stages so far."""
        if not self.medoids:
            return None
        return max(self.medoids, key=lambda g: similarity(seen, g.stages, done))


@dataclass
class _Call:
    stage: int
    prompt_tokens: int
    arrival_s: float
    generated: int = 0  # known once it finished
    finish_s: float | None = None


@dataclass
class _Workflow:
    start_s: float
    deadline_s: float
    calls: dict[str, _Call] = field(default_factory=dict)
    delivered: int = 0  # tokens its finished calls generated
    stage_deadlines: dict[int, float] = field(default_factory=dict)

    def stages(self, now: float) -> tuple[list[WorkflowStage], int]:
        """Its stages so far, and how many of them are complete."""
        by_stage: dict[int, list[_Call]] = {}
        for c in self.calls.values():
            by_stage.setdefault(c.stage, []).append(c)
        out, done = [], 0
        for k in sorted(by_stage):
            cs = by_stage[k]
            finished = all(c.finish_s is not None for c in cs)
            end = max(c.finish_s for c in cs) if finished else now  # type: ignore[type-var]
            out.append(
                WorkflowStage(
                    len(cs),
                    sum(c.prompt_tokens for c in cs) / len(cs),
                    sum(c.generated for c in cs) / len(cs),
                    end - min(c.arrival_s for c in cs),
                )
            )
            done += finished
        return out, done


class WorkflowTracker:
    """Follows the workflows behind the compound sequences a policy sees."""

    def __init__(self, library: GraphLibrary | None = None) -> None:
        self.library = library if library is not None else GraphLibrary()
        self._open: OrderedDict[str, _Workflow] = OrderedDict()
        self._live: dict[str, tuple[str, SeqView]] = {}  # compound sequence id -> (workflow id, last view)

    def observe(self, seqs: Sequence[SeqView], now: float) -> None:
        live, seen = self._live, set()
        for v in seqs:
            slo = v.slo
            if not isinstance(slo, CompoundSLO):
                continue
            seen.add(v.id)
            if v.id not in live:
                self._first_sight(v, slo)
            live[v.id] = (slo.workflow_id, v)
        for sid in sorted(live.keys() - seen):
            self._finished(sid, now)

    def _first_sight(self, v: SeqView, slo: CompoundSLO) -> None:
        wf = self._open.get(slo.workflow_id)
        if wf is None:
            wf = self._open[slo.workflow_id] = _Workflow(v.arrival_s, slo.deadline_s)
            if len(self._open) > MAX_OPEN:
                self._open.popitem(last=False)
        wf.start_s = min(wf.start_s, v.arrival_s)
        wf.calls[v.id] = _Call(slo.stage, v.prompt_tokens, v.arrival_s)

    def _finished(self, sid: str, now: float) -> None:
        wid, v = self._live.pop(sid)
        wf = self._open.get(wid)
        if wf is None:
            return
        call = wf.calls[sid]
        call.generated = v.generated_tokens + 1  # the iteration that ended it sampled one more
        call.finish_s = now
        wf.delivered += call.generated
        assert isinstance(v.slo, CompoundSLO)
        if v.slo.last:
            stages, _ = wf.stages(now)
            self.library.add(WorkflowGraph(tuple(stages)))
            del self._open[wid]

    def start(self, v: SeqView) -> float:
        """When the workflow of compound sequence ``v`` began (its first call's arrival)."""
        wf = self._workflow(v)
        return wf.start_s if wf else v.arrival_s

    def delivered(self, v: SeqView) -> int:
        """Tokens generated by the finished calls of ``v``'s workflow (0 for other sequences)."""
        wf = self._workflow(v)
        return wf.delivered if wf else 0

    def stage_deadline(self, v: SeqView, now: float) -> float:
        """Absolute deadline for compound sequence ``v``'s stage, fixed when first asked."""
        slo = v.slo
        assert isinstance(slo, CompoundSLO)
        wf = self._workflow(v)
        end = self.start(v) + slo.deadline_s
        if wf is None or slo.last:
            return end
        if slo.stage not in wf.stage_deadlines:
            stages, done = wf.stages(now)
            graph = self.library.match(stages, done)
            stage_start = min(c.arrival_s for c in wf.calls.values() if c.stage == slo.stage)
            wf.stage_deadlines[slo.stage] = graph.stage_deadline(slo.stage, stage_start, end) if graph else end
        return wf.stage_deadlines[slo.stage]

    def _workflow(self, v: SeqView) -> _Workflow | None:
        slo = v.slo
        return self._open.get(slo.workflow_id) if isinstance(slo, CompoundSLO) else None
