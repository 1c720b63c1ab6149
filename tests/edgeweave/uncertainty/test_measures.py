"""The measures on hand-computed matrices and known cases; the metrics on known rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeweave.uncertainty import measures as m
from edgeweave.uncertainty.metrics import auroc, brier_isotonic, paired_bootstrap, prr
from edgeweave.uncertainty.samples import SampledAnswer, SampleSet
from edgeweave.uncertainty.tsu import tsu


def test_inv_entropy_on_a_hand_computed_2x2() -> None:
    # S_X = S_Y = [[1, .5], [.5, 1]]: P = [[2/3, 1/3], [1/3, 2/3]], M = P P = [[5/9, 4/9], [4/9, 5/9]],
    # U = -2 * 5/9 ln 5/9 = 0.65310...
    s = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert m.inv_entropy_matrices(s, s) == pytest.approx(-2 * 5 / 9 * math.log(5 / 9), rel=1e-12)


def test_inv_entropy_on_a_hand_computed_3x3_identity_answers() -> None:
    # answers all different (S_Y = I): M = P_X, diag of P_X for S_X = all ones is 1/3 each: U = ln 3
    assert m.inv_entropy_matrices(np.ones((3, 3)), np.eye(3)) == pytest.approx(math.log(3), rel=1e-12)
    # inputs and answers all distinct: M = I, U = 0 (every M_ii = 1)
    assert m.inv_entropy_matrices(np.eye(3), np.eye(3)) == pytest.approx(0.0, abs=1e-9)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _set(answer_emb: np.ndarray, logps: list[list[float]] | None = None, texts: list[str] | None = None) -> SampleSet:
    n, r, _ = answer_emb.shape
    texts = texts or [f"a{j}" for j in range(r)]
    lps = logps or [[-0.1]] * r
    answers = tuple(tuple(SampledAnswer(texts[j], tuple(lps[j])) for j in range(r)) for _ in range(n))
    inputs = _unit(np.eye(n, 8)[:, :8] + 0.1)
    return SampleSet(tuple(f"q{i}" for i in range(n)), inputs, answers, answer_emb)


def test_the_bootstrap_averages_over_draws_and_repeats_with_a_seed() -> None:
    rng = np.random.default_rng(0)
    s = _set(_unit(rng.normal(size=(3, 4, 8))))
    assert m.inv_entropy(s, 20, seed=1) == m.inv_entropy(s, 20, seed=1)
    assert m.inv_entropy(s, 1, seed=1) != m.inv_entropy(s, 1, seed=2)


def test_baselines_know_identical_from_scattered_answers() -> None:
    same = np.tile(_unit(np.ones(8)), (1, 5, 1))
    spread = _unit(np.eye(5, 8))[None]
    for f in (m.degree_matrix, m.luq):
        assert f(same[0]) == pytest.approx(0.0, abs=1e-6)
        assert f(spread[0]) == pytest.approx(1.0 - 1 / 5 if f is m.degree_matrix else 1.0, abs=1e-6)
    assert m.semantic_entropy([SampledAnswer("x", ())] * 5, same[0]) == pytest.approx(0.0, abs=1e-9)
    assert m.semantic_entropy([SampledAnswer("x", ())] * 5, spread[0]) == pytest.approx(math.log(5))
    assert m.kernel_language_entropy(same[0]) < m.kernel_language_entropy(spread[0])
    assert m.lexical_similarity([SampledAnswer("turn on the light", ())] * 3) == pytest.approx(0.0)
    assert m.lexical_similarity([SampledAnswer("a b", ()), SampledAnswer("c d", ())]) == pytest.approx(1.0)
    assert m.rouge_l_f1("the cat sat", "the cat") == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))


def test_predictive_entropy_and_its_length_normalised_form() -> None:
    answers = [SampledAnswer("a", (-1.0, -3.0)), SampledAnswer("b", (-2.0,))]
    assert m.predictive_entropy(answers) == pytest.approx((4.0 + 2.0) / 2)
    assert m.predictive_entropy(answers, length_normalised=True) == pytest.approx((2.0 + 2.0) / 2)


def test_measure_dispatches_every_method_and_p_true_needs_its_probability() -> None:
    rng = np.random.default_rng(0)
    s = _set(_unit(rng.normal(size=(2, 3, 8))), logps=[[-0.5, -0.2]] * 3)
    for method in m.MEASURES:
        if method != "p_true":
            assert math.isfinite(m.measure(method, s, seed=0))
    with pytest.raises(ValueError, match="p_true"):
        m.measure("p_true", s)
    from dataclasses import replace

    assert m.measure("p_true", replace(s, p_true=0.75)) == pytest.approx(0.25)


def test_metrics_on_known_rankings() -> None:
    correct = [True, True, False, False]
    perfect = [0.1, 0.2, 0.8, 0.9]  # wrong answers most uncertain
    assert auroc(perfect, correct) == 1.0
    assert auroc(perfect[::-1], correct) == 0.0
    assert prr(perfect, correct) == pytest.approx(1.0)
    assert prr(perfect[::-1], correct) == pytest.approx(-1.0)
    assert math.isnan(auroc([0.1, 0.2], [True, True]))
    assert 0.0 <= brier_isotonic(perfect * 5, correct * 5) < 0.05


def test_the_bootstrap_keeps_score_label_pairs_together() -> None:
    rng = np.random.default_rng(3)
    correct = rng.random(200) < 0.5
    scores = np.where(correct, 0.0, 1.0) + rng.normal(0, 0.01, 200)  # perfectly separating
    iv = paired_bootstrap(auroc, scores, correct, n=50, seed=0)
    assert iv.mid == 1.0 and iv.low == pytest.approx(1.0)  # independent indices would scatter around 0.5
    assert iv.low <= iv.mid <= iv.high


def test_tsu_is_the_mean_rank_correlation_with_temperature() -> None:
    t = tsu([0.1, 0.7, 1.5], [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [0.5, 0.5, 0.5]])
    assert t.mean_rho == pytest.approx(0.0) and t.positive_share == 0.5 and t.questions == 2
