"""TSU: temperature sensitivity of uncertainty, a label-free check of a measure.

The Inv-Entropy paper proposes TSU without a public definition; ours: sampling at a higher
temperature makes the model's answers more random, so a sound measure's score should rise with
the temperature.  For each question the measure is computed on samples drawn at every temperature
of a ladder (default 0.1..1.5); TSU is the mean over questions of the Spearman rank correlation of
the score with temperature (1: always rises; 0: unrelated; -1: falls), reported with the share of
questions whose correlation is positive.  No correctness labels are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

LADDER: tuple[float, ...] = (0.1, 0.4, 0.7, 1.0, 1.5)


@dataclass(frozen=True)
class Tsu:
    mean_rho: float
    positive_share: float
    questions: int  # those with a defined correlation (a constant score has none)


def tsu(temperatures: Sequence[float], scores: Sequence[Sequence[float]]) -> Tsu:
    """``scores[q][t]``: the measure on question q's samples at ``temperatures[t]``."""
    rhos = []
    for row in scores:
        if len(row) != len(temperatures):
            raise ValueError("each question needs one score per temperature")
        if np.ptp(row) == 0:
            continue
        rhos.append(float(spearmanr(temperatures, row).statistic))
    if not rhos:
        return Tsu(float("nan"), float("nan"), 0)
    return Tsu(float(np.mean(rhos)), float(np.mean(np.asarray(rhos) > 0)), len(rhos))
