"""The escalation gates and the per-token controller, pure: known inputs, known decisions."""

from __future__ import annotations

import math

import pytest

from coordinator.escalation.baselines import AlwaysCloud, AlwaysDevice, LengthRouter, RandomGate
from coordinator.escalation.policy import DeviceAnswer, Question, UncertaintyGate, threshold_for_rate
from coordinator.escalation.token_entropy import TokenEntropyController, topk_entropy
from coordinator.streaming.controller import Move, Progress
from edgeweave.config import CoordinatorConfig, EscalationConfig
from edgeweave.generation.logprobs import TokenLogprob, TopLogprob
from edgeweave.wire.uncertainty import UncertaintyRequest

Q = Question(prompt_chars=40)


def _answer(score: float | None) -> DeviceAnswer:
    return DeviceAnswer(Q, completion_tokens=5, score=score)


def test_threshold_for_rate_escalates_that_share() -> None:
    scores = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 1.0]
    for rate in (0.1, 0.3, 0.5, 0.9):
        t = threshold_for_rate(scores, rate)
        assert sum(s > t for s in scores) == round(rate * len(scores))
    assert threshold_for_rate(scores, 0.0) == math.inf and threshold_for_rate(scores, 1.0) == -math.inf
    with pytest.raises(ValueError, match="rate"):
        threshold_for_rate(scores, 1.5)


def test_the_uncertainty_gate_escalates_above_its_threshold_and_when_unscored() -> None:
    gate = UncertaintyGate(UncertaintyRequest(method="kle", samples=3), threshold=0.5)
    assert gate.route(Q) == "device" and gate.wants_score() == UncertaintyRequest(method="kle", samples=3)
    assert gate.escalate(_answer(0.6)) and not gate.escalate(_answer(0.5)) and gate.escalate(_answer(None))


def test_baselines() -> None:
    assert AlwaysDevice().route(Q) == "device" and not AlwaysDevice().escalate(_answer(9.0))
    assert AlwaysCloud().route(Q) == "cloud" and AlwaysCloud().wants_score() is None
    assert LengthRouter(30).route(Q) == "cloud" and LengthRouter(40).route(Q) == "device"
    gate = RandomGate(0.3, seed=1)
    share = sum(gate.escalate(_answer(None)) for _ in range(4000)) / 4000
    assert abs(share - 0.3) < 0.03  # binomial sd 0.007: 4 sd
    with pytest.raises(ValueError, match="rate"):
        RandomGate(-0.1)


def _step(*probs: float) -> TokenLogprob:
    tops = [TopLogprob(id=i, token=str(i), bytes=[48 + i], logprob=math.log(p)) for i, p in enumerate(probs)]
    return TokenLogprob(**tops[0].model_dump(), top_logprobs=tops)


def test_topk_entropy_renormalises_the_top_alternatives() -> None:
    assert topk_entropy(_step(0.25, 0.25)) == pytest.approx(math.log(2))
    assert topk_entropy(_step(0.999, 0.0005)) < 0.01


def test_the_token_entropy_controller_moves_once_the_window_is_uncertain() -> None:
    c = TokenEntropyController("cloud:gpu", threshold=0.8, window=2)
    assert c.opening().first == ("device",)

    def at(sent: int, step: TokenLogprob) -> Progress:
        return Progress("token", "device:pi", sent, 0.1, 10, logprob=step)

    sure, unsure = _step(0.99, 0.005), _step(0.3, 0.3, 0.3)
    assert c.decide(at(1, unsure)) is None  # one token does not fill the window
    assert c.decide(at(2, sure)) is None  # window mean (ln 3 + 0.06) / 2 = 0.58: below 0.8
    assert c.decide(at(3, sure)) is None
    assert c.decide(at(4, unsure)) is None
    assert c.decide(at(5, unsure)) == Move("cloud:gpu", "entropy") and c.moved_at == 5  # ln 3 = 1.10 > 0.8
    assert c.decide(Progress("failure", "device:pi", 5, 0.1, 10)) == Move("cloud:gpu", "failure")
    assert c.decide(Progress("token", "cloud:gpu", 6, 0.1, 10, logprob=unsure)) is None


def test_escalation_config_is_checked_at_load() -> None:
    assert CoordinatorConfig(policy="escalation").escalation.gate == "uncertainty"
    for bad in ({"gate": "coin"}, {"rate": 2.0}, {"uncertainty": {"method": "kle", "samples": 1}}):
        with pytest.raises(ValueError):
            EscalationConfig.model_validate(bad)
