"""The tier-parity benchmark's arithmetic on hand-made rows (the measurement itself runs the real tiers)."""

from __future__ import annotations

import pytest

from benchmarks.tier_parity import PromptParity, summarize


def row(agree: tuple[bool, ...], margins: tuple[float, ...], identical: bool) -> PromptParity:
    return PromptParity("q", "a", identical, agree.index(False) if False in agree else len(agree), len(agree),
                        tuple(0.01 for _ in agree), agree, margins)  # fmt: skip


def test_migration_is_identical_only_if_every_later_argmax_agrees() -> None:
    r = row((True, False, True, True), (3.0, 0.2, 1.0, 2.0), identical=False)
    assert [r.migration_identical(k) for k in (0, 1, 2, 4)] == [False, False, True, True]


def test_summary() -> None:
    rows = [row((True, False, True), (2.0, 0.3, 1.0), False), row((True, True, True), (1.0, 1.0, 0.5), True)]
    s = summarize(rows)
    assert s["greedy_identical_fraction"] == 0.5 and s["top1_agreement"] == pytest.approx(5 / 6)
    assert s["max_disagreement_margin"] == 0.3 and s["positions"] == 6
    assert s["migration_identical_k1"] == 0.5 and s["migration_identical_k2"] == 1.0
    assert s["migration_identical_k4"] != s["migration_identical_k4"]  # NaN: no answer that long
