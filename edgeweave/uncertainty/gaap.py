"""GAAP: a genetic search for perturbations that spread the inputs while keeping their meaning.

The Inv-Entropy paper names GAAP (genetic-algorithm perturbation) but publishes no definition;
this is ours.  A genome is a chain of 1-3 rule operators (:mod:`edgeweave.uncertainty.perturb`)
with a seed; its phenotype is the perturbed question.  Model paraphrases, when a sampler is given,
join the candidate pool as fixed phenotypes.

- Constraint (meaning kept): a candidate is feasible when its MiniLM cosine to the original is at
  least :data:`MIN_COS` and it keeps the original's protected tokens (numbers and capitalised
  words past the first, the names an answer depends on).  Infeasible candidates are dropped.
- Fitness of a set of k inputs: the mean pairwise cosine distance of the original and the k
  (the embedding spread Inv-Entropy's P_X needs to be informative).
- Search: a population of genomes evolves for :data:`GENERATIONS` rounds (tournament selection,
  one-point crossover of chains, mutation of an operator or the seed); the k inputs are then
  chosen greedily from every feasible phenotype seen (farthest-point from the chosen ones), which
  maximises the set fitness better than ranking single candidates.
Embeddings are cached per text, so the cost is about POPULATION x GENERATIONS short encodes
(about a quarter of a second with MiniLM on two cores).
"""

from __future__ import annotations

import re

import numpy as np

from edgeweave.uncertainty.perturb import OPERATORS, apply_chain, model_paraphrases
from edgeweave.uncertainty.samples import Embedder, Sampler

MIN_COS = 0.7
POPULATION = 24
GENERATIONS = 4
_NUMBER_OR_NAME = re.compile(r"\b\d[\d.,]*\b|(?<!^)(?<![.?!] )\b[A-Z][a-z]+\b")

Genome = tuple[tuple[int, ...], int]  # operator chain, seed


def protected_tokens(question: str) -> set[str]:
    return {m.group() for m in _NUMBER_OR_NAME.finditer(question.strip())}


def keeps(text: str, protected: set[str]) -> bool:
    return all(re.search(rf"(?<![\w.,]){re.escape(t)}(?![\w]|[.,]\d)", text) for t in protected)


def spread(emb: np.ndarray) -> float:
    """Mean pairwise cosine distance of L2-normalised rows."""
    n = emb.shape[0]
    if n < 2:
        return 0.0
    sim = emb @ emb.T
    return float((n * n - sim.sum()) / (n * (n - 1)))


class GaapPerturber:
    def __init__(self, embedder: Embedder, sampler: Sampler | None = None, paraphrases: int = 0) -> None:
        self.embedder = embedder
        self.sampler = sampler
        self.paraphrases = paraphrases
        self._cache: dict[str, np.ndarray] = {}

    def _embed(self, texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            for t, e in zip(new, self.embedder.embed(new), strict=True):
                self._cache[t] = e
        return np.stack([self._cache[t] for t in texts])

    def feasible(self, question: str, candidates: list[str]) -> list[str]:
        keep = protected_tokens(question)
        fine = [c for c in dict.fromkeys(candidates) if c != question and keeps(c, keep)]
        if not fine:
            return []
        sims = self._embed(fine) @ self._embed([question])[0]
        return [c for c, s in zip(fine, sims, strict=True) if s >= MIN_COS]

    async def perturb(self, question: str, k: int, seed: int | None) -> list[str]:
        rng = np.random.default_rng(seed)
        pool: list[str] = []
        if self.sampler is not None and self.paraphrases:
            pool += await model_paraphrases(self.sampler, question, self.paraphrases, seed=seed)
        population: list[Genome] = [self._random_genome(rng) for _ in range(POPULATION)]
        for _ in range(GENERATIONS):
            texts = [apply_chain(question, g[0], g[1]) for g in population]
            ok = set(self.feasible(question, texts))
            pool += [t for t in texts if t in ok]
            fitness = self._fitness(question, texts, ok)
            population = [self._child(population, fitness, rng) for _ in range(POPULATION)]
        chosen = self._choose(question, self.feasible(question, pool), k)
        while len(chosen) < k:  # too few feasible variants: repeat the farthest ones
            chosen.append(chosen[len(chosen) % max(len(chosen), 1)] if chosen else question)
        return chosen

    def _random_genome(self, rng: np.random.Generator) -> Genome:
        chain = tuple(int(x) for x in rng.integers(0, len(OPERATORS), size=int(rng.integers(1, 4))))
        return chain, int(rng.integers(1 << 31))

    def _fitness(self, question: str, texts: list[str], ok: set[str]) -> np.ndarray:
        emb = self._embed(texts)
        dist = 1.0 - emb @ self._embed([question])[0]
        return np.where([t in ok for t in texts], dist, -1.0)

    def _child(self, population: list[Genome], fitness: np.ndarray, rng: np.random.Generator) -> Genome:
        def pick() -> Genome:
            a, b = rng.integers(0, len(population), size=2)
            return population[a] if fitness[a] >= fitness[b] else population[b]

        (c1, s1), (c2, _) = pick(), pick()
        cut1, cut2 = int(rng.integers(0, len(c1) + 1)), int(rng.integers(0, len(c2) + 1))
        chain = (c1[:cut1] + c2[cut2:])[:3] or c1
        if rng.random() < 0.3:
            i = int(rng.integers(len(chain)))
            chain = chain[:i] + (int(rng.integers(len(OPERATORS))),) + chain[i + 1 :]
        seed = s1 if rng.random() < 0.5 else int(rng.integers(1 << 31))
        return chain, seed

    def _choose(self, question: str, pool: list[str], k: int) -> list[str]:
        """Farthest-point selection: each next input is the one farthest (max of min distance) from the chosen."""
        if not pool:
            return []
        emb = self._embed(pool)
        nearest = 1.0 - emb @ self._embed([question])[0]
        chosen: list[int] = []
        for _ in range(min(k, len(pool))):
            i = int(np.argmax(np.where(np.isin(np.arange(len(pool)), chosen), -np.inf, nearest)))
            chosen.append(i)
            nearest = np.minimum(nearest, 1.0 - emb @ emb[i])
        return [pool[i] for i in chosen]
