"""SoundWeaver's cache manager (arXiv 2603.07865), pure: entries in, decisions out, no clock read.

Each entry is a generated sound kept as its clean normalized log-mel with the caption embedding,
duration, a quality score (the online judge's, see :mod:`cloud.soundweaver.runtime`) and an
importance score that decays exponentially with time (half-life ``half_life_s``) and grows by one
on each use.  When the cache is full the entry with the lowest ``importance x quality`` leaves
(quality-aware eviction: a popular but poor sound goes before a popular good one); ``lru=True``
evicts the least recently used instead (the "SoundWeaver with LRU" baseline).  A new sound that
nearly duplicates an entry (same meaning, same length) replaces it only when it is better.
:meth:`CacheManager.refinement` names the entry most worth regenerating at full steps when the
server is idle: popular and below the quality bar.

Time is the caller's (``now``, seconds): the live service passes its monotonic clock, the
benchmark its trace's arrival times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class CacheEntry:
    key: int
    prompt: str
    embedding: np.ndarray  # unit-norm caption embedding
    duration: float
    mel: torch.Tensor  # clean, [N_MELS, frames]
    quality: float  # the online judge's text-audio score in [0, 1]
    full_steps: bool  # generated at the full schedule (not warm-started)
    importance: float = 1.0
    stamp: float = 0.0  # when importance was last brought up to date
    last_used: float = 0.0
    uses: int = 0
    states: dict[int, torch.Tensor] = field(default_factory=dict)  # NIRVANA: schedule index -> latent


@dataclass(frozen=True)
class CacheOptions:
    capacity: int = 1000
    half_life_s: float = 600.0
    duplicate_similarity: float = 0.97
    duplicate_duration_ratio: float = 1.1
    refine_below: float = 0.5  # quality under which a popular entry is regenerated when idle
    refine_min_importance: float = 2.0
    lru: bool = False


class CacheManager:
    def __init__(self, options: CacheOptions | None = None) -> None:
        self.options = options or CacheOptions()
        self.entries: dict[int, CacheEntry] = {}
        self._next = 0
        self.evictions = 0
        self._matrix: np.ndarray | None = None  # rows: embeddings in key order; rebuilt lazily
        self._keys: list[int] = []

    def __len__(self) -> int:
        return len(self.entries)

    def importance(self, e: CacheEntry, now: float) -> float:
        return e.importance * math.exp(-math.log(2) * max(now - e.stamp, 0.0) / self.options.half_life_s)

    def index(self) -> tuple[list[int], np.ndarray]:
        """Keys and their embedding rows (``[n, dim]``), for the selector's similarity search."""
        if self._matrix is None:
            self._keys = list(self.entries)
            rows = [self.entries[k].embedding for k in self._keys]
            self._matrix = np.stack(rows) if rows else np.zeros((0, 1), dtype=np.float32)
        return self._keys, self._matrix

    def touch(self, key: int, now: float) -> None:
        """An entry served as a reference: its importance decays to ``now`` and gains one."""
        e = self.entries[key]
        e.importance = self.importance(e, now) + 1.0
        e.stamp = e.last_used = now
        e.uses += 1

    def _victim(self, now: float) -> int:
        if self.options.lru:
            return min(self.entries.values(), key=lambda e: e.last_used).key
        return min(self.entries.values(), key=lambda e: self.importance(e, now) * max(e.quality, 1e-3)).key

    def _duplicate(self, embedding: np.ndarray, duration: float) -> CacheEntry | None:
        keys, m = self.index()
        if not keys:
            return None
        sims = m @ embedding
        for i in np.argsort(-sims):
            if sims[i] < self.options.duplicate_similarity:
                return None
            e = self.entries[keys[int(i)]]
            if max(e.duration, duration) / min(e.duration, duration) <= self.options.duplicate_duration_ratio:
                return e
        return None

    def admit(self, entry: CacheEntry, now: float) -> int | None:
        """Keep ``entry`` (its key) or refuse it (None: a better near-duplicate is kept)."""
        dup = self._duplicate(entry.embedding, entry.duration)
        if dup is not None:
            if dup.quality >= entry.quality:
                return None
            entry.importance = self.importance(dup, now) + entry.importance
            self.remove(dup.key)
        elif len(self.entries) >= self.options.capacity:
            self.remove(self._victim(now))
            self.evictions += 1
        entry.key = self._next
        self._next += 1
        entry.stamp = entry.last_used = now
        self.entries[entry.key] = entry
        self._matrix = None
        return entry.key

    def remove(self, key: int) -> None:
        del self.entries[key]
        self._matrix = None

    def refinement(self, now: float) -> CacheEntry | None:
        """The entry to regenerate at full steps while idle (None: nothing worth it); never with LRU."""
        if self.options.lru:
            return None
        o = self.options
        poor = [
            e for e in self.entries.values()
            if e.quality < o.refine_below and not e.full_steps and self.importance(e, now) >= o.refine_min_importance
        ]  # fmt: skip
        return max(poor, key=lambda e: self.importance(e, now), default=None)
