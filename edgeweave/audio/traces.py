"""Sound-request traces: Zipf popularity over sound concepts, paraphrased captions, varied durations,
Poisson arrivals (the workload SoundWeaver's cache is built for).

The generator (:func:`generate`) draws a catalog of ``concepts`` distinct sounds (a
:class:`~edgeweave.audio.corpus.SoundSpec` without its length, each with a typical length), then
``requests`` arrivals with exponential gaps (rate ``rate`` per second); each request picks a catalog
item with probability proportional to 1 / rank ** ``zipf``, words it afresh from the caption
grammar (``paraphrase`` selects the template half, so a test trace can be worded unlike the
training captions), and asks for the item's typical length times a factor drawn from
[1 / ``spread``, ``spread``], clipped to 1-10 s.  Each row keeps the spec it was drawn from, the
ground truth the quality metrics check against.  Same arguments, same trace.

The CSV columns (:data:`COLUMNS`) are what ``--trace`` reads; any file with them replays.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeweave.audio.corpus import MAX_DURATION, MIN_DURATION, SoundSpec, caption, check_spec, random_spec
from edgeweave.errors import UsageError

COLUMNS = ("arrival_s", "prompt", "duration_s", "seed", "concept", "pitch", "tempo", "loudness", "texture", "notes")


@dataclass(frozen=True)
class SoundRequestRow:
    arrival_s: float
    prompt: str
    duration: float
    seed: int
    spec: SoundSpec  # what the prompt describes (its duration is the request's)


def generate(
    requests: int,
    seed: int,
    concepts: int = 120,
    zipf: float = 1.1,
    rate: float = 0.25,
    spread: float = 1.5,
    paraphrase: int = 0,
) -> list[SoundRequestRow]:
    rng = np.random.default_rng(seed)
    catalog = [random_spec(rng) for _ in range(concepts)]
    weights = 1.0 / np.arange(1, concepts + 1) ** zipf
    weights /= weights.sum()
    rows: list[SoundRequestRow] = []
    t = 0.0
    for _ in range(requests):
        t += float(rng.exponential(1.0 / rate))
        item = catalog[int(rng.choice(concepts, p=weights))]
        factor = float(np.exp(rng.uniform(-np.log(spread), np.log(spread))))
        duration = round(float(np.clip(item.duration * factor, MIN_DURATION, MAX_DURATION)), 2)
        spec = item.with_duration(duration)
        rows.append(
            SoundRequestRow(round(t, 3), caption(spec, rng, paraphrase), duration, int(rng.integers(2**31)), spec)
        )
    return rows


def write(rows: list[SoundRequestRow], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            s = r.spec
            w.writerow(
                [r.arrival_s, r.prompt, r.duration, r.seed, s.concept, s.pitch, s.tempo, s.loudness, s.texture, s.notes]
            )


def read(path: Path) -> list[SoundRequestRow]:
    """A trace CSV (:data:`COLUMNS`); a :class:`UsageError` naming the row and column that is wrong."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError("trace", f"{path}: missing columns {', '.join(missing)} (need {', '.join(COLUMNS)})")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                duration = float(r["duration_s"])
                spec = SoundSpec(
                    concept=r["concept"], pitch=r["pitch"], tempo=r["tempo"], loudness=r["loudness"],  # type: ignore[arg-type]
                    texture=r["texture"], notes=int(r["notes"]), duration=duration,  # type: ignore[arg-type]
                )  # fmt: skip
                check_spec(spec)
                rows.append(SoundRequestRow(float(r["arrival_s"]), r["prompt"], duration, int(r["seed"]), spec))
            except (TypeError, ValueError) as e:
                raise UsageError("trace", f"{path}: row {i}: {e}") from None
    return rows
