"""Tempo's output-length bound (quantile regression forest) and its CLI verb."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cloud.tempo.length import LengthBound, split
from edgeweave.data.traces import load_trace
from tests.cli import run_cli


@pytest.fixture(scope="module")
def trained() -> tuple[LengthBound, list]:
    train, held_out = split(load_trace(), 0.8, seed=3)  # 20% of the trace trains, to stay quick
    return LengthBound.fit(train[:3000], trees=20), held_out[:3000]


def test_bound_never_below_the_tokens_already_generated(trained: tuple[LengthBound, list]) -> None:
    model, _ = trained
    rng = random.Random(0)
    prompts = [rng.randrange(1, 8000) for _ in range(300)]
    generated = [rng.randrange(0, 3000) for _ in range(300)]
    for g, b in zip(generated, model.bounds(prompts, generated), strict=True):
        assert b > g


def test_held_out_coverage_is_near_the_target(trained: tuple[LengthBound, list]) -> None:
    model, held_out = trained
    assert 0.9 <= model.coverage(held_out) <= 0.99


def test_save_load_round_trip_and_a_foreign_file(trained: tuple[LengthBound, list], tmp_path: Path) -> None:
    model, _ = trained
    loaded = LengthBound.load(model.save(tmp_path / "len.pkl"))
    assert loaded.bounds([500, 900], [0, 40]) == model.bounds([500, 900], [0, 40])
    (tmp_path / "junk.pkl").write_bytes(b"not a model")
    with pytest.raises(Exception, match="not a length-bound model"):
        LengthBound.load(tmp_path / "junk.pkl")


def test_cli_reports_coverage_and_refuses_bad_logs(tmp_path: Path) -> None:
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rng = random.Random(1)
    for i in range(400):
        p = rng.randrange(10, 2000)
        rows.append(f"2026-11-24 10:00:{i % 60:02d}.000000,{p},{max(1, p // 10 + rng.randrange(0, 50))}")
    log = tmp_path / "log.csv"
    log.write_text("\n".join(rows) + "\n")
    out = run_cli("tempo", "train-length", "--log", str(log), "--out", str(tmp_path / "m.pkl"))
    assert out.returncode == 0, out.stderr
    assert "coverage on 80 held-out requests" in out.stdout
    log.write_text("\n".join(rows[:20]) + "\n")
    out = run_cli("tempo", "train-length", "--log", str(log), "--out", str(tmp_path / "m.pkl"))
    assert out.returncode == 2 and "too few" in out.stderr
    out = run_cli("tempo", "train-length", "--log", str(log), "--out", "x", "--held-out", "1.5")
    assert out.returncode == 2 and "--held-out" in out.stderr
