"""Uncertainty on the wire: the ``uncertainty`` request extension and the score returned with an answer.

A chat or completion request (coordinator, cloud service) or a device ``generate`` call may carry
``uncertainty: {method, samples, ...}``; the answer then comes back with an :class:`UncertaintyScore`
(non-streaming: beside ``choices``; streaming: in the last chunk, the one with the finish reason).
Higher scores mean more uncertain, for every method.  The extra generations the score needed are
counted in the score and in the response's ``usage``.  The measures themselves live in
:mod:`edgeweave.uncertainty` (Inv-Entropy, arXiv 2506.09684, and its baselines).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

UncertaintyMethod = Literal[
    "inv_entropy",  # Inv-Entropy (the paper's measure): perturbed inputs x sampled answers
    "semantic_entropy",  # entropy over meaning clusters (embedding-threshold equivalence, no NLI model here)
    "lexical_similarity",  # 1 - mean pairwise ROUGE-L F1 of the answers
    "degree_matrix",  # Lin et al.'s Deg: 1 - mean degree of the answers' similarity graph
    "luq",  # LUQ: 1 - mean support of each answer by the others
    "kle",  # kernel language entropy: von Neumann entropy of a heat kernel on the answers' graph
    "predictive_entropy",  # -mean sum log p(answer) over the samples (needs logprobs)
    "ln_predictive_entropy",  # the same, each answer's log p divided by its length
    "p_true",  # 1 - p("True") when the model is asked whether its answer is right
]
# the methods that perturb the input (the others sample answers to the original input only)
PERTURBING: frozenset[str] = frozenset({"inv_entropy"})
# the methods that compare the answers to one input with each other
COMPARING: frozenset[str] = frozenset({"semantic_entropy", "lexical_similarity", "degree_matrix", "luq", "kle"})
MAX_SAMPLES = 20
MAX_PERTURBATIONS = 19


class UncertaintyRequest(BaseModel):
    """``uncertainty`` in a request: which measure, on how many samples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: UncertaintyMethod = "inv_entropy"
    samples: int = Field(default=5, ge=1, le=MAX_SAMPLES)  # answers sampled per input
    perturbations: int = Field(default=9, ge=0, le=MAX_PERTURBATIONS)  # inv_entropy: inputs besides the original
    temperature: float = Field(default=0.7, gt=0.0, le=2.0)  # of the extra samples (the paper's 0.7)
    bootstrap: int = Field(default=20, ge=1, le=1000)  # inv_entropy: draws of one answer per input
    max_tokens: int = Field(default=32, ge=1, le=1024)  # per extra sample
    seed: int | None = None  # the extra samples' and the perturbations' seed (default: the request's)

    @model_validator(mode="after")
    def _enough(self) -> UncertaintyRequest:
        if self.method == "inv_entropy" and self.perturbations < 1:
            raise ValueError("perturbations: inv_entropy needs at least 1 perturbed input")
        if self.method in COMPARING and self.samples < 2:
            raise ValueError(f"samples: {self.method} compares answers to each other, it needs at least 2")
        return self

    @property
    def inputs(self) -> int:
        """Inputs answered: the original, plus the perturbations where the method uses them."""
        return 1 + (self.perturbations if self.method in PERTURBING else 0)


class UncertaintyScore(BaseModel):
    """The score returned with an answer, and what it cost."""

    model_config = ConfigDict(extra="forbid")

    method: UncertaintyMethod
    score: float  # higher: more likely wrong
    inputs: int  # inputs answered (the original and its perturbations)
    samples: int  # answers generated for the score (all inputs together)
    prompt_tokens: int  # what those extra generations prefilled
    completion_tokens: int  # and generated
    seconds: float  # wall time of the scoring (sampling, embedding, the measure)
