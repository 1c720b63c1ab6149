"""p(True)'s verification prompt and arithmetic (edgeweave.uncertainty.p_true), shared by every tier's sampler."""

from __future__ import annotations

import math

import pytest

from edgeweave.errors import UsageError
from edgeweave.generation.logprobs import TokenLogprob, TopLogprob
from edgeweave.uncertainty.p_true import NO_JUDGEMENT, p_true_of, verification_messages
from edgeweave.wire.protocol import Message


def top(i: int, token: str, p: float) -> TopLogprob:
    return TopLogprob(id=i, token=token, bytes=list(token.encode()), logprob=math.log(p))


def step(*alternatives: TopLogprob) -> TokenLogprob:
    first = alternatives[0]
    return TokenLogprob(**first.model_dump(), top_logprobs=list(alternatives))


def test_p_true_sums_both_spellings_of_each_word() -> None:
    s = step(top(1, "True", 0.4), top(2, " True", 0.2), top(3, "False", 0.1), top(4, " False", 0.1), top(5, "Yes", 0.2))
    assert p_true_of(s) == pytest.approx(0.6 / 0.8)  # "Yes" is neither word


def test_p_true_counts_the_chosen_token_once() -> None:
    # the chosen token is also the first alternative: it must not be counted twice
    assert p_true_of(step(top(3, "False", 0.5), top(1, "True", 0.25))) == pytest.approx(0.25 / 0.75)


def test_p_true_without_either_word_is_no_judgement() -> None:
    assert p_true_of(step(top(7, "Maybe", 0.9), top(8, "Yes", 0.05))) == NO_JUDGEMENT


def test_p_true_counts_a_byte_level_first_letter_and_any_case() -> None:
    assert p_true_of(step(top(84, "T", 0.3), top(70, "F", 0.1), top(9, "true", 0.1))) == pytest.approx(0.4 / 0.5)


def test_verification_replaces_the_last_user_turn_and_keeps_the_context() -> None:
    messages = [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Capital of Peru?"),
        Message(role="assistant", content="Lima"),
        Message(role="user", content=" Capital of France? "),
    ]
    out = verification_messages(messages, " Paris ")
    assert out[:3] == messages[:3]
    assert out[3].role == "user"
    assert "Question: Capital of France?\nProposed answer: Paris\n" in out[3].content
    assert out[3].content.endswith("True or False.")
    with pytest.raises(UsageError, match="user message"):
        verification_messages([Message(role="system", content="x")], "a")
