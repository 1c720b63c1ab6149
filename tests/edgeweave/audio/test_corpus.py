"""The home-sound corpus, its caption grammar, the mel codec and the request traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeweave.audio import traces
from edgeweave.audio.corpus import CONCEPTS, SAMPLE_RATE, SoundSpec, caption, check_spec, random_spec, render
from edgeweave.audio.mel import N_MELS, GriffinLim, frames_for, to_mel
from edgeweave.audio.quality import frechet, paired_interval, spectral_distance_db
from edgeweave.errors import UsageError


@pytest.mark.parametrize("concept", CONCEPTS)
def test_every_concept_renders_its_length_at_its_loudness_from_a_seed(concept: str) -> None:
    spec = SoundSpec(concept, loudness="soft", duration=1.5)  # type: ignore[arg-type]
    a, b = render(spec, 3), render(spec, 3)
    assert a.dtype == np.float32 and len(a) == int(1.5 * SAMPLE_RATE)
    assert np.array_equal(a, b)  # one seed, one sound
    assert float(np.max(np.abs(a))) == pytest.approx(0.25, abs=1e-6)  # peak-scaled to "soft"
    assert float(np.sqrt(np.mean(a**2))) > 0.01  # not silence


def test_captions_word_the_spec_and_the_two_template_halves_differ() -> None:
    rng = np.random.default_rng(0)
    spec = SoundSpec("doorbell", pitch="high", loudness="loud", notes=2)
    words = {caption(spec, rng, 0) for _ in range(40)} | {caption(spec, rng, 1) for _ in range(40)}
    assert len(words) > 20  # paraphrases
    assert all(any(n in w for n in ("bell", "doorbell")) for w in words)
    assert all(any(n in w for n in ("two-note", "two-tone")) for w in words)
    half0 = {caption(spec, np.random.default_rng(i), 0) for i in range(30)}
    half1 = {caption(spec, np.random.default_rng(i), 1) for i in range(30)}
    assert not half0 & half1


def test_check_spec_names_the_bad_attribute() -> None:
    check_spec(random_spec(np.random.default_rng(1)))
    with pytest.raises(ValueError, match="concept 'gong'"):
        check_spec(SoundSpec("gong"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duration 12"):
        check_spec(SoundSpec("rain", duration=12.0))


def test_mel_round_trip_through_griffin_lim_keeps_the_spectrum() -> None:
    audio = render(SoundSpec("alarm", duration=2.0), 0)
    mel = to_mel(audio, frames_for(2.0))
    assert mel.shape == (N_MELS, frames_for(2.0)) and frames_for(2.0) % 4 == 0
    assert float(mel.min()) >= -1.0 and float(mel.max()) <= 1.0
    back = GriffinLim()(mel, 2.0, 0)
    assert len(back) == len(audio)
    # the mel's pseudo-inverse leaks energy into the silent bins between an alarm's harmonics (the
    # worst case of the corpus: ~13 dB mean error, most of it in bins 40+ dB down), still half the
    # distance to an unrelated sound; a noise sound comes back almost exactly (deterministic: seeded)
    same = spectral_distance_db(back, audio)
    other = spectral_distance_db(render(SoundSpec("rain", duration=2.0), 0), audio)
    assert same < 16.0 and other > 1.5 * same
    rain = render(SoundSpec("rain", duration=2.0), 0)
    assert spectral_distance_db(GriffinLim()(to_mel(rain, frames_for(2.0)), 2.0, 0), rain) < 3.0


def test_frechet_is_zero_on_itself_and_grows_with_a_shift() -> None:
    x = np.random.default_rng(0).normal(size=(200, 4))
    assert frechet(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet(x, x + 1.0) == pytest.approx(4.0, rel=1e-6)  # |mu shift|^2, same covariance
    mean, half = paired_interval([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert mean == 1.0 and half == 0.0


def test_a_trace_has_zipf_popularity_poisson_arrivals_and_round_trips(tmp_path: Path) -> None:
    rows = traces.generate(400, seed=5, concepts=50, zipf=1.1, rate=2.0)
    gaps = np.diff([0.0] + [r.arrival_s for r in rows])
    assert np.mean(gaps) == pytest.approx(0.5, rel=0.15)  # 400 exponential gaps: the mean's sd is 5%
    specs = [(r.spec.concept, r.spec.pitch, r.spec.tempo, r.spec.loudness, r.spec.texture, r.spec.notes) for r in rows]
    counts = sorted((specs.count(s) for s in set(specs)), reverse=True)
    assert counts[0] > 5 * counts[len(counts) // 2]  # a head and a long tail
    assert len({r.prompt for r in rows}) > len(set(specs))  # the same sound, worded differently
    assert all(1.0 <= r.duration <= 10.0 for r in rows)
    path = tmp_path / "t.csv"
    traces.write(rows, path)
    assert traces.read(path) == rows
    assert traces.generate(10, seed=5) == traces.generate(10, seed=5)


def test_a_bad_trace_names_its_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("arrival_s,prompt\n1,a\n")
    with pytest.raises(UsageError, match="missing columns duration_s"):
        traces.read(path)
    good = traces.generate(2, seed=1)
    traces.write(good, path)
    path.write_text(path.read_text().replace(good[1].spec.concept, "gong"))
    with pytest.raises(UsageError, match="row 3: concept 'gong'"):
        traces.read(path)
