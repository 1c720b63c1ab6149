"""Compound requests: stored workflow graphs, matching a running workflow, stage deadlines."""

from __future__ import annotations

import math

import pytest

from cloud.engine.scheduler import SeqView
from cloud.tempo.workflows import GraphLibrary, WorkflowGraph, WorkflowStage, WorkflowTracker, similarity
from edgeweave.wire.slo import CompoundSLO

CHAIN = WorkflowGraph((WorkflowStage(1, 40, 20, 1.0), WorkflowStage(1, 60, 120, 3.0)))  # short plan, long answer
FANOUT = WorkflowGraph((WorkflowStage(1, 30, 10, 0.5), WorkflowStage(3, 200, 60, 2.0), WorkflowStage(1, 90, 40, 1.5)))
LONG = WorkflowGraph(tuple(WorkflowStage(1, 500, 150, 2.0) for _ in range(4)))


def test_stage_deadlines_split_the_remaining_time_by_the_matched_graph() -> None:
    # stage 1 of FANOUT starts at t=2 for a workflow due at t=10: 8 s left, stage times 2.0 : 1.5
    assert FANOUT.stage_deadline(1, 2.0, 10.0) == pytest.approx(2.0 + 8.0 * 2.0 / 3.5)
    assert FANOUT.stage_deadline(0, 0.0, 8.0) == pytest.approx(8.0 * 0.5 / 4.0)
    assert FANOUT.stage_deadline(2, 7.0, 10.0) == 10.0  # the last stage gets the workflow's deadline
    assert CHAIN.stage_deadline(5, 7.0, 10.0) == 10.0  # past the matched graph's end: the deadline


def test_kernel_similarity_is_one_for_the_same_graph_and_falls_with_distance() -> None:
    assert similarity(FANOUT.stages, FANOUT.stages) == 1.0
    assert similarity(FANOUT.stages, CHAIN.stages) < similarity(FANOUT.stages[:2], FANOUT.stages, done=1) <= 1.0
    # a running workflow (1 stage done, the 2nd in flight with 3 calls) against the stored ones
    seen = [WorkflowStage(1, 32, 11, 0.4), WorkflowStage(3, 190, 0, 0.2)]
    sims = {g: similarity(seen, g.stages, done=1) for g in (CHAIN, FANOUT, LONG)}
    assert max(sims, key=sims.get) is FANOUT  # type: ignore[arg-type]
    assert math.isclose(sims[FANOUT], math.exp(-sum((a - b) ** 2 for a, b in _feat(seen, FANOUT)) / 2))


def _feat(seen: list[WorkflowStage], g: WorkflowGraph) -> list[tuple[float, float]]:
    pairs = list(zip(seen[0].features(True), g.stages[0].features(True), strict=True))
    return pairs + list(zip(seen[1].features(False), g.stages[1].features(False), strict=True))


def test_library_matches_among_k_medoids_of_many_stored_graphs() -> None:
    lib = GraphLibrary(k=3)
    for i in range(40):  # three families with small variations
        jitter = 1 + (i % 5) / 50
        base = (CHAIN, FANOUT, LONG)[i % 3]
        stages = tuple(
            WorkflowStage(s.calls, s.prompt_tokens * jitter, s.output_tokens, s.seconds) for s in base.stages
        )
        lib.add(WorkflowGraph(stages))
    assert len(lib.medoids) == 3
    assert sorted(len(m.stages) for m in lib.medoids) == [2, 3, 4]  # one representative per family
    match = lib.match([WorkflowStage(1, 480, 140, 2.1), WorkflowStage(1, 520, 0, 0.1)], done=1)
    assert match is not None and len(match.stages) == 4
    assert lib.match([WorkflowStage(1, 30, 10, 0.5)], done=0) is not None


def _view(sid: str, t: float, stage: int, last: bool, generated: int = 5) -> SeqView:
    slo = CompoundSLO(type="compound", workflow_id="w1", stage=stage, deadline_s=12.0, last=last)
    return SeqView(sid, t, "running", 50 + generated, 49 + generated, generated, 64, 4, 4, 50, slo)


def test_tracker_follows_a_workflow_and_stores_its_graph_when_the_last_call_ends() -> None:
    lib = GraphLibrary()
    lib.add(FANOUT)
    tr = WorkflowTracker(lib)
    tr.observe([_view("a", 1.0, 0, False)], now=1.0)
    tr.observe([], now=1.5)  # "a" finished (6 tokens: 5 seen + the one that ended it)
    b, c = _view("b", 1.8, 1, False, 0), _view("c", 1.8, 1, False, 0)
    tr.observe([b, c], now=1.8)
    assert tr.start(b) == 1.0 and tr.delivered(b) == 6
    # matched to FANOUT (the only graph): stage 1 starts at 1.8, due 13.0: (13-1.8) * 2.0/3.5
    assert tr.stage_deadline(b, 1.8) == pytest.approx(1.8 + 11.2 * 2.0 / 3.5)
    tr.observe([], now=4.0)
    d = _view("d", 4.2, 2, True, 0)
    tr.observe([d], now=4.2)
    assert tr.stage_deadline(d, 4.2) == 13.0
    tr.observe([], now=6.0)
    assert len(lib.graphs) == 2
    stored = lib.graphs[-1]
    assert [s.calls for s in stored.stages] == [1, 2, 1]
    assert [s.seconds for s in stored.stages] == pytest.approx([0.5, 2.2, 1.8])
