"""What an uncertainty measure reads, and the protocols a tier provides to produce it.

A :class:`SampleSet` is the one typed thing every measure takes: the inputs (the original question
first, then its perturbations), their sentence embeddings, and for each input the answers sampled
at the scoring temperature with their embeddings and token log-probabilities.  Every measure of
:mod:`edgeweave.uncertainty` runs on the same set, so a benchmark compares them on the same samples.

A tier supplies a :class:`Sampler` (the device daemon over its worker, the cloud service over its
engine, the coordinator over an endpoint's ``n``) and an :class:`Embedder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgeweave.errors import UsageError
from edgeweave.wire.protocol import Message


def last_user(messages: Sequence[Message]) -> int:
    """Index of the last user message: the one a measure perturbs and p(True) asks about."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i
    raise UsageError("messages", "an uncertainty score needs a user message to ask about")


@dataclass(frozen=True)
class SampledAnswer:
    text: str
    token_logprobs: tuple[float, ...]  # the chosen tokens' raw log-probabilities (edgeweave.generation.logprobs)
    finish_reason: str | None = None


@dataclass(frozen=True)
class SampleBatch:
    """``n`` answers to one input, and what generating them cost."""

    answers: tuple[SampledAnswer, ...]
    prompt_tokens: int
    completion_tokens: int


class Sampler(Protocol):
    async def sample(
        self, messages: Sequence[Message], n: int, temperature: float, max_tokens: int, seed: int | None
    ) -> SampleBatch:
        """``n`` answers to ``messages``, each with its tokens' logprobs (choice i seeded seed + i)."""
        ...

    async def p_true(self, messages: Sequence[Message], answer: str) -> float:
        """The model's probability that ``answer`` to ``messages`` is right (Kadavath et al.'s p(True):
        the next-token probability of " True" against " False" after a fixed verification prompt)."""
        ...


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        ...

    def tokens(self, texts: Sequence[str]) -> int:
        """Word pieces the texts cost (the embeddings API's usage)."""
        ...


@dataclass(frozen=True)
class SampleSet:
    """``inputs[0]`` is the original question; ``answers[i]`` the answers sampled for ``inputs[i]``
    (the same count for every input); embeddings are L2-normalised rows."""

    inputs: tuple[str, ...]
    input_embeddings: np.ndarray  # (n_inputs, dim)
    answers: tuple[tuple[SampledAnswer, ...], ...]  # (n_inputs, samples)
    answer_embeddings: np.ndarray  # (n_inputs, samples, dim)
    p_true: float | None = None  # the model's p(True) for the answer being scored, where asked
    prompt_tokens: int = 0  # what the sampling cost
    completion_tokens: int = 0

    @property
    def samples(self) -> int:
        return len(self.answers[0]) if self.answers else 0
