"""Training pools of the home-sound corpus: clips synthesized from a seed, as mels with embedded captions.

Durations are whole seconds 1-10 so that a batch holds one duration and needs no padding; each clip
has three captions (template half 0) embedded by the given embedder.  The sound model
(:mod:`edgeweave.models.sound_train`) and the judges (:mod:`edgeweave.audio.judges`) train on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from edgeweave.audio.corpus import CONCEPTS, caption, random_spec, render
from edgeweave.audio.mel import frames_for, to_mel

CAPTIONS_PER_CLIP = 3
DURATIONS = tuple(float(s) for s in range(1, 11))


@dataclass
class Pool:
    """Clips of one duration: mels ``[n, N_MELS, frames]``, caption embeddings ``[n, k, 384]`` and
    each clip's concept (its index in :data:`CONCEPTS`)."""

    mels: torch.Tensor
    embeddings: torch.Tensor
    concepts: torch.Tensor


def build_pools(clips: int, seed: int, embed: Callable[[Sequence[str]], np.ndarray]) -> dict[float, Pool]:
    """About ``clips`` clips split evenly over :data:`DURATIONS`, synthesized from ``seed``."""
    rng = np.random.default_rng(seed)
    pools: dict[float, Pool] = {}
    per = max(clips // len(DURATIONS), 1)
    for d in DURATIONS:
        specs = [random_spec(rng, duration=d) for _ in range(per)]
        mels = torch.stack([to_mel(render(s, int(rng.integers(2**31))), frames_for(d)) for s in specs])
        texts = [caption(s, rng, paraphrase=0) for s in specs for _ in range(CAPTIONS_PER_CLIP)]
        emb = torch.from_numpy(embed(texts)).view(per, CAPTIONS_PER_CLIP, -1)
        pools[d] = Pool(mels, emb, torch.tensor([CONCEPTS.index(s.concept) for s in specs]))
    return pools
