"""Tempo's output-length upper bound: a quantile regression forest.

Predicts the 0.95 quantile of a request's total output length from its prompt
length and the tokens it has generated so far, so the bound can be
re-predicted as generation proceeds (every ``REPREDICT_EVERY`` tokens) and
never falls below what was already generated.  Trained from logged requests
(any CSV with the trace columns ``ContextTokens,GeneratedTokens``: the cloud
server's ``request_log`` or the Azure trace) by ``edgeweave tempo
train-length``; each training request contributes one row per checkpoint of
its generation (0, 50, 100, ... tokens in), conditioning on having got there.
The model file is a pickle: loading it runs code (:data:`PICKLE_WARNING`).
"""

from __future__ import annotations

import logging
import math
import pickle
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from quantile_forest import RandomForestQuantileRegressor

from edgeweave.data.traces import TraceRequest
from edgeweave.errors import ModelFileError

log = logging.getLogger("edgeweave.tempo")
PICKLE_WARNING = "the length model file is unpickled, which runs code: load only files you trust"
QUANTILE = 0.95
CALIBRATION_LEVELS = (0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99, 0.995)
REPREDICT_EVERY = 50


def features(prompt_tokens: int, generated: int) -> list[float]:
    return [math.log1p(prompt_tokens), math.log1p(generated)]


def _rows(reqs: Sequence[TraceRequest]) -> tuple[np.ndarray, np.ndarray]:
    x, y = [], []
    for r in reqs:
        for g in range(0, r.output_tokens, REPREDICT_EVERY):
            x.append(features(r.prompt_tokens, g))
            y.append(r.output_tokens)
    return np.asarray(x), np.asarray(y, dtype=float)


@dataclass
class LengthBound:
    forest: RandomForestQuantileRegressor
    quantile: float = QUANTILE

    @classmethod
    def fit(cls, reqs: Sequence[TraceRequest], seed: int = 0, trees: int = 50, target: float = QUANTILE) -> LengthBound:
        """Fit on 80% of ``reqs``; on the other 20% pick the lowest forest quantile (from 0.95 up)
        whose bound covers ``target`` of the requests (the checkpoint rows over-represent long
        answers, so the forest's own 0.95 quantile covers a little less)."""
        fit_on, calibrate = split(reqs, 0.2, seed)
        forest = RandomForestQuantileRegressor(n_estimators=trees, min_samples_leaf=20, random_state=seed, n_jobs=1)
        forest.fit(*_rows(fit_on))
        model = cls(forest)
        for q in CALIBRATION_LEVELS:
            model.quantile = q
            if model.coverage(calibrate) >= target:
                break
        return model

    def bounds(self, prompt_tokens: Sequence[int], generated: Sequence[int]) -> list[int]:
        """Upper bounds on total output length, each above the tokens already generated."""
        if not prompt_tokens:
            return []
        x = np.asarray([features(p, g) for p, g in zip(prompt_tokens, generated, strict=True)])
        pred = self.forest.predict(x, quantiles=self.quantile)
        return [max(int(math.ceil(b)), g + 1) for b, g in zip(np.ravel(pred), generated, strict=True)]

    def bound(self, prompt_tokens: int, generated: int = 0) -> int:
        return self.bounds([prompt_tokens], [generated])[0]

    def coverage(self, reqs: Sequence[TraceRequest]) -> float:
        """Fraction of requests whose output length is within the bound predicted at their start."""
        if not reqs:
            return float("nan")
        b = self.bounds([r.prompt_tokens for r in reqs], [0] * len(reqs))
        return sum(r.output_tokens <= x for r, x in zip(reqs, b, strict=True)) / len(reqs)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(pickle.dumps(self))
        return path

    @classmethod
    def load(cls, path: str | Path) -> LengthBound:
        log.warning("loading %s: %s", path, PICKLE_WARNING)
        try:
            obj = pickle.loads(Path(path).read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
            raise ModelFileError(str(path), f"not a length-bound model ({type(e).__name__})") from None
        if not isinstance(obj, cls):
            raise ModelFileError(str(path), "not a length-bound model")
        return obj


def split(reqs: Sequence[TraceRequest], held_out: float, seed: int) -> tuple[list[TraceRequest], list[TraceRequest]]:
    shuffled = list(reqs)
    random.Random(seed).shuffle(shuffled)
    n = int(len(shuffled) * (1 - held_out))
    return shuffled[:n], shuffled[n:]
