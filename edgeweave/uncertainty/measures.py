"""The uncertainty measures, each a pure function of one :class:`~edgeweave.uncertainty.samples.SampleSet`.

Inv-Entropy (arXiv 2506.09684), as the authors' repository computes it: S_X and S_Y are the
absolute cosine similarities of the inputs' and of the answers' sentence embeddings (one answer
drawn per input), P_X and P_Y their row-normalised forms, M = P_Y P_X, and
U = -sum_i M_ii ln M_ii; the score is U averaged over bootstrap draws of one answer per input.
A confident model gives similar answers to similar inputs and different ones to different inputs,
so M's diagonal holds the mass of input i's own answer, and its entropy terms are small.

The baselines, on the answers to the original input (``answers[0]``), with the substitutes this
machine forces (no NLI entailment model can be downloaded): meaning equivalence is MiniLM cosine
above :data:`EQUIVALENT_COS` (where the papers used DeBERTa-MNLI).

- semantic entropy (Kuhn et al. 2023): entropy of the meaning clusters' probabilities, discrete
  (cluster sizes) or weighted by the answers' sequence probabilities where logprobs exist;
- lexical similarity (Fomicheva et al. 2020): 1 - mean pairwise ROUGE-L F1 (LCS over words);
- degree matrix (Lin et al. 2023, U_Deg): 1 - mean degree of the answers' similarity graph / m;
- LUQ (Zhang et al. 2024): 1 - mean over answers of the mean support the others give it;
- kernel language entropy (Nikitin et al. 2024): von Neumann entropy of the unit-trace heat kernel
  exp(-t L) of the similarity graph's Laplacian (t = :data:`KLE_T`);
- predictive entropy: -mean over samples of sum log p(token); its length-normalised form divides
  each sample's sum by its length (Malinin & Gales 2021);
- p(True) (Kadavath et al. 2022): 1 - the model's probability that its answer is right.
Higher is more uncertain for every measure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from rapidfuzz.distance import LCSseq
from scipy.linalg import expm

from edgeweave.uncertainty.samples import SampledAnswer, SampleSet
from edgeweave.wire.uncertainty import UncertaintyMethod

EQUIVALENT_COS = 0.85  # MiniLM cosine above which two answers count as the same meaning
KLE_T = 0.3  # heat-kernel time of kernel language entropy (the paper's range is 0.1..1)
_TINY = 1e-12


def _row_normalise(s: np.ndarray) -> np.ndarray:
    return s / np.maximum(s.sum(axis=1, keepdims=True), _TINY)


def abs_cos(emb: np.ndarray) -> np.ndarray:
    """|cos| between rows (the rows are L2-normalised)."""
    return np.abs(emb @ emb.T)


def inv_entropy_matrices(s_x: np.ndarray, s_y: np.ndarray) -> float:
    """U = -sum_i M_ii ln M_ii with M = P_Y P_X, for explicit similarity matrices (n x n)."""
    m = _row_normalise(s_y) @ _row_normalise(s_x)
    d = np.clip(np.diag(m), _TINY, None)
    return float(-(d * np.log(d)).sum())


def inv_entropy(s: SampleSet, bootstrap: int = 20, seed: int | None = None) -> float:
    """The paper's Inv-Entropy: mean U over ``bootstrap`` draws of one answer per input."""
    n, r = len(s.inputs), s.samples
    s_x = abs_cos(s.input_embeddings)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(bootstrap):
        pick = rng.integers(0, r, size=n)
        y = s.answer_embeddings[np.arange(n), pick]
        total += inv_entropy_matrices(s_x, abs_cos(y))
    return total / bootstrap


def inv_entropy_mean_answer(s: SampleSet) -> float:
    """Variant without bootstrap: each input's answers represented by their mean (re-normalised) embedding."""
    mean = s.answer_embeddings.mean(axis=1)
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), _TINY)
    return inv_entropy_matrices(abs_cos(s.input_embeddings), abs_cos(mean))


def inv_entropy_full_rows(s: SampleSet, bootstrap: int = 20, seed: int | None = None) -> float:
    """Variant: the mean entropy of M's whole rows (each row is a distribution over inputs) instead of its diagonal."""
    n, r = len(s.inputs), s.samples
    p_x = _row_normalise(abs_cos(s.input_embeddings))
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(bootstrap):
        y = s.answer_embeddings[np.arange(n), rng.integers(0, r, size=n)]
        m = np.clip(_row_normalise(abs_cos(y)) @ p_x, _TINY, None)
        total += float(-(m * np.log(m)).sum(axis=1).mean())
    return total / bootstrap


def clusters(emb: np.ndarray, threshold: float = EQUIVALENT_COS) -> list[list[int]]:
    """Greedy meaning clusters (Kuhn et al.'s algorithm with cosine for bidirectional entailment):
    each answer joins the first cluster whose first member it is equivalent to."""
    out: list[list[int]] = []
    for i in range(emb.shape[0]):
        for c in out:
            if float(emb[i] @ emb[c[0]]) >= threshold:
                c.append(i)
                break
        else:
            out.append([i])
    return out


def _sequence_logp(a: SampledAnswer) -> float:
    return float(sum(a.token_logprobs))


def semantic_entropy(answers: Sequence[SampledAnswer], emb: np.ndarray, weighted: bool = True) -> float:
    """Entropy of the meaning clusters; ``weighted``: cluster mass from sequence probabilities
    (normalised over the samples) where every answer has logprobs, else cluster sizes."""
    groups = clusters(emb)
    if weighted and all(a.token_logprobs for a in answers):
        logp = np.array([_sequence_logp(a) for a in answers])
        w = np.exp(logp - logp.max())
    else:
        w = np.ones(len(answers))
    mass = np.array([w[g].sum() for g in groups]) / w.sum()
    mass = np.clip(mass, _TINY, None)
    return float(-(mass * np.log(mass)).sum())


def rouge_l_f1(a: str, b: str) -> float:
    x, y = a.lower().split(), b.lower().split()
    if not x or not y:
        return float(x == y)
    lcs = LCSseq.similarity(x, y)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(x), lcs / len(y)
    return 2 * p * r / (p + r)


def lexical_similarity(answers: Sequence[SampledAnswer]) -> float:
    m = len(answers)
    sims = [rouge_l_f1(answers[i].text, answers[j].text) for i in range(m) for j in range(i + 1, m)]
    return 1.0 - float(np.mean(sims)) if sims else 0.0


def degree_matrix(emb: np.ndarray) -> float:
    """Lin et al.'s U_Deg = trace(m I - D) / m^2 with W = |cos|: 1 - mean degree / m."""
    w = abs_cos(emb)
    m = w.shape[0]
    return float((m - w.sum(axis=1)).sum() / (m * m))


def luq(emb: np.ndarray) -> float:
    """LUQ: 1 - mean over answers of the mean similarity the other answers give it."""
    w = abs_cos(emb)
    m = w.shape[0]
    if m < 2:
        return 0.0
    support = (w.sum(axis=1) - np.diag(w)) / (m - 1)
    return float(1.0 - support.mean())


def kernel_language_entropy(emb: np.ndarray, t: float = KLE_T) -> float:
    """Von Neumann entropy -tr(K ln K) of K = exp(-t L) / tr(exp(-t L)), L the Laplacian of W = |cos|."""
    w = abs_cos(emb)
    lap = np.diag(w.sum(axis=1)) - w
    k = expm(-t * lap)
    k /= np.trace(k)
    eig = np.clip(np.linalg.eigvalsh((k + k.T) / 2), _TINY, None)
    return float(-(eig * np.log(eig)).sum())


def predictive_entropy(answers: Sequence[SampledAnswer], length_normalised: bool = False) -> float:
    vals = []
    for a in answers:
        lp = np.asarray(a.token_logprobs, dtype=np.float64)
        if lp.size:
            vals.append(lp.mean() if length_normalised else lp.sum())
    return -float(np.mean(vals)) if vals else 0.0


def _p_true(s: SampleSet) -> float:
    if s.p_true is None:
        raise ValueError("p_true: the sample set has no p(True) (collect it with method p_true)")
    return 1.0 - s.p_true


_MEASURES: dict[UncertaintyMethod, Callable[[SampleSet, int, int | None], float]] = {
    "inv_entropy": lambda s, b, seed: inv_entropy(s, b, seed),
    "semantic_entropy": lambda s, b, seed: semantic_entropy(s.answers[0], s.answer_embeddings[0]),
    "lexical_similarity": lambda s, b, seed: lexical_similarity(s.answers[0]),
    "degree_matrix": lambda s, b, seed: degree_matrix(s.answer_embeddings[0]),
    "luq": lambda s, b, seed: luq(s.answer_embeddings[0]),
    "kle": lambda s, b, seed: kernel_language_entropy(s.answer_embeddings[0]),
    "predictive_entropy": lambda s, b, seed: predictive_entropy(s.answers[0]),
    "ln_predictive_entropy": lambda s, b, seed: predictive_entropy(s.answers[0], length_normalised=True),
    "p_true": lambda s, b, seed: _p_true(s),
}
MEASURES: tuple[UncertaintyMethod, ...] = tuple(_MEASURES)


def measure(method: UncertaintyMethod, s: SampleSet, seed: int | None = None, bootstrap: int = 20) -> float:
    """``method``'s score on ``s`` (higher: more uncertain)."""
    return _MEASURES[method](s, bootstrap, seed)
