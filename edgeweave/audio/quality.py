"""Offline quality of generated sound: four measures, each with its noise (bootstrap over requests).

- **CLAP score**: the CLAP-style judge's text-audio cosine (:class:`~edgeweave.audio.judges.Clap`),
  mean over requests: does the sound match its caption?  Note that SoundWeaver's gater uses the
  same judge online as its reward's quality term, so this measure is not independent of the
  policy that it grades; the next three are.
- **Classifier accuracy**: the fraction of sounds whose concept the classifier
  (:class:`~edgeweave.audio.judges.SoundClassifier`) names as the one requested.
- **Frechet distance** between the classifier's 64-d embeddings of the generated sounds and of the
  corpus's own renderings of the same specs (after the same vocoder round trip): a Frechet Audio
  Distance on an in-domain embedding.  Biased upward at small sample sizes (it compares
  64x64 covariances), so only differences between methods on one trace mean anything.
- **Spectral distance** to the full-step output for the same prompt and seed: the mean absolute
  log-mel difference in dB (0 for full-step generation itself).

The noise of a mean is its bootstrap 95% interval's half-width; a difference between two methods
on the same requests is judged on the paired bootstrap (:func:`paired_interval`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import linalg

from edgeweave.audio.mel import LOG_HI, LOG_LO, to_mel

DB_PER_UNIT = 10 * np.log10(np.e) * (LOG_HI - LOG_LO) / 2  # normalized log-mel unit -> dB of power


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the rows of ``a`` and ``b``."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # fewer sounds than dimensions: singular covariances, as FAD has at small n
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def spectral_distance_db(audio: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute log-mel difference of two clips of one length, in dB."""
    a, b = to_mel(audio), to_mel(reference)
    n = min(a.shape[-1], b.shape[-1])
    return float((a[..., :n] - b[..., :n]).abs().mean()) * DB_PER_UNIT


def interval(values: Sequence[float], seed: int = 0, draws: int = 1000) -> float:
    """Half-width of the bootstrap 95% interval of the mean of ``values``."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(len(x), size=(draws, len(x)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float((hi - lo) / 2)


def paired_interval(a: Sequence[float], b: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """(mean of a - b, the bootstrap 95% half-width of it) over paired requests."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(d.mean()), interval(d, seed)


def frechet_interval(a: np.ndarray, b: np.ndarray, seed: int = 0, draws: int = 200) -> float:
    """Bootstrap 95% half-width of the Frechet distance, resampling both sets."""
    rng = np.random.default_rng(seed)
    vals = [frechet(a[rng.integers(len(a), size=len(a))], b[rng.integers(len(b), size=len(b))]) for _ in range(draws)]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float((hi - lo) / 2)
