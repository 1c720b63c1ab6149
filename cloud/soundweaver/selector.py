"""SoundWeaver's reference selector (arXiv 2603.07865): which cached sound to warm-start from, and
how to fit it to the requested length.

Retrieval is cosine similarity between unit caption embeddings (MiniLM) behind two gates: a
semantic gate (similarity at least ``min_similarity``) and a duration gate (the entry's length
within ``max_duration_ratio`` of the request's, either way).  Among the entries that pass, the
score is similarity minus ``duration_weight`` x |log duration ratio|, so a slightly less similar
sound of the right length can win over a near-identical one that must be stretched far.

Alignment (:func:`align`) works on the mel's frames, the model's own representation.  A stationary
sound (rain, wind, a fan: its frame energy barely moves, :func:`is_stationary`) is looped or
cropped, which changes nothing of what it is; any other is time-stretched by resampling its
magnitude frames, the magnitude path of a phase vocoder (phases are re-estimated by the
Griffin-Lim vocoder after denoising, so a phase-vocoder's phase bookkeeping would be thrown away).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cloud.soundweaver.cache import CacheEntry, CacheManager
from edgeweave.audio.mel import frames_for


@dataclass(frozen=True)
class SelectorOptions:
    min_similarity: float = 0.7  # on the dev trace, every nearest earlier request above it was the same concept
    max_duration_ratio: float = 2.0
    duration_weight: float = 0.1


@dataclass(frozen=True)
class Reference:
    entry: CacheEntry
    similarity: float
    duration_ratio: float  # the entry's length / the request's


def select(cache: CacheManager, embedding: np.ndarray, duration: float, options: SelectorOptions) -> Reference | None:
    keys, m = cache.index()
    if not keys:
        return None
    sims = m @ embedding
    best: tuple[float, Reference] | None = None
    for i in np.flatnonzero(sims >= options.min_similarity):
        e = cache.entries[keys[int(i)]]
        ratio = e.duration / duration
        if max(ratio, 1 / ratio) > options.max_duration_ratio:
            continue
        score = float(sims[i]) - options.duration_weight * abs(math.log(ratio))
        if best is None or score > best[0]:
            best = (score, Reference(e, float(sims[i]), ratio))
    return None if best is None else best[1]


STATIONARY_SPREAD = 0.08  # normalized log-mel units: frame-energy std below it reads as stationary


@dataclass(frozen=True)
class Layout:
    """How a model's latent rows relate to time: frames per clip length, and the value of silence.
    ``mel``: the rows are our normalized log-mel, where loudness (and so stationarity) can be read;
    another model's latent (AudioLDM's VAE) is always stretched, never looped."""

    frames: Callable[[float], int] = frames_for
    silence: float = -1.0
    mel: bool = True


MEL = Layout()


def is_stationary(mel: torch.Tensor) -> bool:
    """Whether the sound's loudness holds steady over time (the spread of its per-frame mean level)."""
    level = mel.mean(0)
    active = level[level > -0.98]  # trailing silence padding is not the sound
    return bool(active.numel() > 4 and float(active.std()) < STATIONARY_SPREAD)


def align(rows: torch.Tensor, from_seconds: float, to_seconds: float, layout: Layout = MEL) -> torch.Tensor:
    """``rows`` (a clip of ``from_seconds``) fitted to ``to_seconds``: looped/cropped when a stationary
    mel, else stretched in time; ``[rows, layout.frames(to_seconds)]``."""
    frames = layout.frames(to_seconds)
    used = min(rows.shape[-1], max(layout.frames(from_seconds), 1))
    clip = rows[:, :used]
    if layout.mel and is_stationary(clip):
        reps = -(-frames // used)
        return clip.repeat(1, reps)[:, :frames]
    target = max(round(used * to_seconds / from_seconds), 1)
    stretched = torch.nn.functional.interpolate(clip[None], size=target, mode="linear", align_corners=False)[0]
    if stretched.shape[-1] >= frames:
        return stretched[:, :frames]
    return torch.nn.functional.pad(stretched, (0, frames - stretched.shape[-1]), value=layout.silence)
