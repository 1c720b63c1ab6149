"""collect/score over a fake sampler (the math is the real one), and GAAP's constraint with the real MiniLM."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from edgeweave.models.embedder import load_embedder
from edgeweave.uncertainty.gaap import MIN_COS, GaapPerturber, keeps, protected_tokens, spread
from edgeweave.uncertainty.perturb import RulePerturber
from edgeweave.uncertainty.samples import SampleBatch, SampledAnswer
from edgeweave.uncertainty.scoring import collect, score
from edgeweave.wire.protocol import Message
from edgeweave.wire.uncertainty import UncertaintyRequest


class CountingSampler:
    """Answers 'yes <i>' with one logprob per word; counts what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int, int | None]] = []

    async def sample(
        self, messages: Sequence[Message], n: int, temperature: float, max_tokens: int, seed: int | None
    ) -> SampleBatch:
        self.asked.append((messages[-1].content, n, seed))
        answers = tuple(SampledAnswer(f"yes {i % 2}", (-0.1, -0.2 * i)) for i in range(n))
        return SampleBatch(answers, prompt_tokens=10, completion_tokens=2 * n)

    async def p_true(self, messages: Sequence[Message], answer: str) -> float:
        return 0.9 if answer.startswith("Paris") else 0.2


class HashEmbedder:
    name = "hash"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.stack([np.random.default_rng(abs(hash(t)) % (1 << 31)).normal(size=16) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    def tokens(self, texts: Sequence[str]) -> int:
        return sum(len(t.split()) for t in texts)


QUESTION = [Message(role="system", content="Be brief."), Message(role="user", content="What is the capital of France?")]


async def test_collect_perturbs_the_last_user_message_and_seeds_each_input() -> None:
    sampler = CountingSampler()
    req = UncertaintyRequest(method="inv_entropy", samples=3, perturbations=2, seed=7)
    s = await collect(QUESTION, req, sampler, HashEmbedder(), perturber=RulePerturber())
    assert s.inputs[0] == QUESTION[1].content and len(s.inputs) == 3 and len(set(s.inputs)) == 3
    assert s.answer_embeddings.shape == (3, 3, 16) and s.input_embeddings.shape == (3, 16)
    assert [a[2] for a in sampler.asked] == [7, 1007, 2007]
    assert (s.prompt_tokens, s.completion_tokens) == (30, 18)


async def test_score_counts_the_extra_samples_and_p_true_reads_the_answer() -> None:
    req = UncertaintyRequest(method="predictive_entropy", samples=4, perturbations=0)
    got = await score(QUESTION, req, CountingSampler(), HashEmbedder())
    assert got.inputs == 1 and got.samples == 4 and got.completion_tokens == 8 and got.score > 0
    p_true = UncertaintyRequest(method="p_true", samples=1)
    pt = await score(QUESTION, p_true, CountingSampler(), HashEmbedder(), "Paris")
    assert pt.score == pytest.approx(0.1)


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    return load_embedder()


async def test_gaap_keeps_meaning_and_spreads_more_than_random_rules(minilm) -> None:  # type: ignore[no-untyped-def]
    q = "Please turn on the kitchen lights and set the temperature to 21 in Lisbon."
    gaap = GaapPerturber(minilm)
    out = await gaap.perturb(q, 5, seed=3)
    assert len(out) == 5 and q not in out
    keep = protected_tokens(q)
    assert keep == {"21", "Lisbon"}
    cos = minilm.embed(out) @ minilm.embed([q])[0]
    assert all(keeps(t, keep) for t in out) and not keeps("set it to 2 in Lisbon", keep)
    assert (cos >= MIN_COS - 1e-6).all()
    rules = await RulePerturber().perturb(q, 5, seed=3)
    assert spread(minilm.embed([q, *out])) >= spread(minilm.embed([q, *rules]))
