"""The uncertainty benchmark's question sets and their judges."""

from __future__ import annotations

from edgeweave.data.uq_questions import Question, capitals, fold, households, questions, weave_home


def test_judges() -> None:
    q = Question("What is the capital of Colombia?", "Bogota", "contains")
    assert q.correct("The capital of Colombia is Bogotá.") and not q.correct("Medellín")
    assert fold("Bogotá") == fold("BOGOTA")
    (yaounde,) = [c for c in capitals(40, seed=0) if c.reference == "Yaounde"]  # GeoNames writes it unaccented
    assert yaounde.correct("Yaoundé") and "Cameroon" in yaounde.prompt
    cmd = weave_home(3)[0]
    assert cmd.correct(cmd.reference) and not cmd.correct(cmd.reference[:-1])


def test_sets_are_deterministic_and_mixed() -> None:
    a, b = capitals(10, seed=3), capitals(10, seed=3)
    assert a == b and len({q.prompt for q in a}) == 10
    assert len(households(6)) == 6 and len(questions("weave-home", 4)) == 4
