"""The home-sound corpus: procedurally synthesized sounds with captions from a grammar.

SoundWeaver (arXiv 2603.07865) is evaluated on a text-to-audio model; none can be downloaded
here, so the repository trains its own on this corpus.  A :class:`SoundSpec` names a concept
(chime, doorbell, beep, alarm, kettle whistle, knock, footsteps, rain, wind, fan, music box) and
its attributes (pitch, tempo, loudness, texture, note count, duration 1-10 s); :func:`render`
synthesizes it at 16 kHz from a seed, and :func:`caption` words it from a grammar of templates and
synonyms, so that two captions of one spec are paraphrases.  Templates are split in two
(``paraphrase`` 0 or 1): the training captions and the request traces' captions can be worded
differently from the ones a test trace uses.

Every sound is built from numpy primitives (sines with harmonics and decays, filtered noise,
envelopes); a stationary concept (rain, wind, fan, kettle) can be looped or cropped to a new
duration without changing what it is, which the reference selector relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

SAMPLE_RATE = 16_000
MIN_DURATION = 1.0
MAX_DURATION = 10.0

Concept = Literal[
    "chime", "doorbell", "beep", "alarm", "kettle", "knock", "footsteps", "rain", "wind", "fan", "music_box"
]
CONCEPTS: tuple[Concept, ...] = (
    "chime", "doorbell", "beep", "alarm", "kettle", "knock", "footsteps", "rain", "wind", "fan", "music_box",
)  # fmt: skip
STATIONARY: frozenset[Concept] = frozenset({"rain", "wind", "fan", "kettle"})
Pitch = Literal["low", "mid", "high"]
Tempo = Literal["slow", "medium", "fast"]
Loudness = Literal["soft", "normal", "loud"]
Texture = Literal["smooth", "bright", "harsh"]
PITCHES: tuple[Pitch, ...] = ("low", "mid", "high")
TEMPOS: tuple[Tempo, ...] = ("slow", "medium", "fast")
LOUDNESSES: tuple[Loudness, ...] = ("soft", "normal", "loud")
TEXTURES: tuple[Texture, ...] = ("smooth", "bright", "harsh")

_BASE_HZ = {"low": 220.0, "mid": 440.0, "high": 880.0}
_RATE = {"slow": 0.6, "medium": 1.0, "fast": 1.7}  # events per second, relative
_GAIN = {"soft": 0.25, "normal": 0.5, "loud": 0.85}
_HARMONICS = {"smooth": (1.0, 0.15), "bright": (1.0, 0.5, 0.3, 0.2), "harsh": (1.0, 0.7, 0.6, 0.5, 0.4, 0.3)}


@dataclass(frozen=True)
class SoundSpec:
    concept: Concept
    pitch: Pitch = "mid"
    tempo: Tempo = "medium"
    loudness: Loudness = "normal"
    texture: Texture = "smooth"
    notes: int = 2  # chimes, doorbells and music boxes: how many notes in the motif
    duration: float = 3.0  # seconds

    def with_duration(self, seconds: float) -> SoundSpec:
        return replace(self, duration=seconds)


def check_spec(spec: SoundSpec) -> None:
    """A ``ValueError`` naming the attribute of ``spec`` that the corpus does not know."""
    for name, value, allowed in (
        ("concept", spec.concept, CONCEPTS), ("pitch", spec.pitch, PITCHES), ("tempo", spec.tempo, TEMPOS),
        ("loudness", spec.loudness, LOUDNESSES), ("texture", spec.texture, TEXTURES), ("notes", spec.notes, (2, 3, 4)),
    ):  # fmt: skip
        if value not in allowed:
            raise ValueError(f"{name} {value!r} is not one of {', '.join(map(str, allowed))}")
    if not MIN_DURATION <= spec.duration <= MAX_DURATION:
        raise ValueError(f"duration {spec.duration} is not within {MIN_DURATION}-{MAX_DURATION} s")


def random_spec(rng: np.random.Generator, concept: Concept | None = None, duration: float | None = None) -> SoundSpec:
    c = concept or CONCEPTS[int(rng.integers(len(CONCEPTS)))]
    return SoundSpec(
        concept=c,
        pitch=PITCHES[int(rng.integers(3))],
        tempo=TEMPOS[int(rng.integers(3))],
        loudness=LOUDNESSES[int(rng.integers(3))],
        texture=TEXTURES[int(rng.integers(3))],
        notes=int(rng.integers(2, 5)),
        duration=float(duration if duration is not None else rng.uniform(MIN_DURATION, MAX_DURATION)),
    )


# ---- synthesis -------------------------------------------------------------------------------


def _t(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / SAMPLE_RATE


def _tone(freq: float, seconds: float, texture: Texture, decay: float) -> np.ndarray:
    t = _t(max(int(seconds * SAMPLE_RATE), 1))
    wave = sum(a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(_HARMONICS[texture]))
    attack = np.minimum(t / 0.005, 1.0)
    return np.asarray(wave * attack * np.exp(-t * decay))


def _place(out: np.ndarray, clip: np.ndarray, at: float) -> None:
    i = int(at * SAMPLE_RATE)
    if i >= len(out):
        return
    n = min(len(clip), len(out) - i)
    out[i : i + n] += clip[:n]


def _lowpass(noise: np.ndarray, cutoff_hz: float) -> np.ndarray:
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)
    return np.asarray(np.fft.irfft(spec / (1 + (f / cutoff_hz) ** 4), len(noise)))


def _bandpass(noise: np.ndarray, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)
    return np.asarray(np.fft.irfft(spec * ((f > lo) & (f < hi)), len(noise)))


_MOTIFS = (0, 4, 7, 12, 7, 4)  # semitones: a major arpeggio up and down


def _melodic(spec: SoundSpec, out: np.ndarray, rng: np.random.Generator, step_s: float, decay: float) -> None:
    base = _BASE_HZ[spec.pitch]
    gap = step_s / _RATE[spec.tempo]
    motif = [_MOTIFS[i % len(_MOTIFS)] for i in range(spec.notes)]
    if spec.concept == "doorbell":
        motif = [7, 3, 0, 0][: spec.notes]  # ding-dong, falling
    period = gap * spec.notes + gap * 1.5
    t0 = 0.02
    while t0 < spec.duration:
        for k, semis in enumerate(motif):
            f = base * 2 ** (semis / 12) * (1 + rng.normal(0, 0.002))
            _place(out, _tone(f, min(gap * 3, 2.0), spec.texture, decay), t0 + k * gap)
        t0 += period


def _pulses(spec: SoundSpec, out: np.ndarray, on_s: float, off_s: float, freqs: tuple[float, ...]) -> None:
    rate = _RATE[spec.tempo]
    t0, k = 0.0, 0
    while t0 < spec.duration:
        clip = _tone(freqs[k % len(freqs)], on_s / rate, spec.texture, 2.0)
        fade = np.minimum(1.0, np.linspace(1, 0, len(clip)) * 20)
        _place(out, clip * fade, t0)
        t0 += (on_s + off_s) / rate
        k += 1


def _impacts(spec: SoundSpec, out: np.ndarray, rng: np.random.Generator, gap_s: float, cutoff: float) -> None:
    rate = _RATE[spec.tempo]
    t0 = 0.05
    burst_n = int(0.06 * SAMPLE_RATE)
    env = np.exp(-_t(burst_n) * 60)
    while t0 < spec.duration:
        burst = _lowpass(rng.normal(0, 1, burst_n), cutoff * _BASE_HZ[spec.pitch] / 440) * env
        thump = _tone(_BASE_HZ[spec.pitch] / 4, 0.06, "smooth", 50)
        _place(out, burst * 3 + thump, t0)
        t0 += gap_s / rate * (1 + rng.normal(0, 0.05))
        if spec.concept == "knock" and rng.random() < 0.3:
            t0 += 0.6 / rate  # knocks come in groups


def render(spec: SoundSpec, seed: int) -> np.ndarray:
    """``spec`` as float32 samples at :data:`SAMPLE_RATE`, peak-scaled to its loudness."""
    rng = np.random.default_rng(seed)
    n = int(round(spec.duration * SAMPLE_RATE))
    out = np.zeros(n, dtype=np.float64)
    c = spec.concept
    base = _BASE_HZ[spec.pitch]
    if c in ("chime", "music_box"):
        _melodic(spec, out, rng, 0.35 if c == "chime" else 0.18, 3.0 if c == "chime" else 6.0)
    elif c == "doorbell":
        _melodic(spec, out, rng, 0.5, 2.0)
    elif c == "beep":
        _pulses(spec, out, 0.15, 0.35, (base * 2,))
    elif c == "alarm":
        _pulses(spec, out, 0.25, 0.05, (base * 2, base * 1.5))
    elif c == "kettle":
        t = _t(n)
        rise = np.minimum(t / 1.5, 1.0)
        wobble = 1 + 0.01 * np.sin(2 * np.pi * 5 * _RATE[spec.tempo] * t)
        out += rise * sum(
            a * np.sin(2 * np.pi * base * 3 * (k + 1) * wobble * t) for k, a in enumerate(_HARMONICS[spec.texture])
        )
        out += 0.1 * _bandpass(rng.normal(0, 1, n), 2000, 6000)
    elif c in ("knock", "footsteps"):
        _impacts(spec, out, rng, 0.25 if c == "knock" else 0.55, 900 if c == "knock" else 400)
    elif c == "rain":
        drops = rng.random(n) < 0.002 * _RATE[spec.tempo] * 4
        hiss = _bandpass(rng.normal(0, 1, n), 1000 * base / 440, 7000)
        out += hiss * 0.3 + _lowpass(drops * rng.normal(0, 4, n), 3000)
    elif c == "wind":
        gust = 0.6 + 0.4 * np.sin(2 * np.pi * 0.2 * _RATE[spec.tempo] * _t(n) + rng.uniform(0, 6.3))
        out += _lowpass(rng.normal(0, 1, n), 300 * base / 440) * gust * 3
    elif c == "fan":
        t = _t(n)
        hum = sum(a * np.sin(2 * np.pi * base / 4 * (k + 1) * t) for k, a in enumerate(_HARMONICS[spec.texture]))
        out += 0.5 * hum * (1 + 0.2 * np.sin(2 * np.pi * 8 * _RATE[spec.tempo] * t))
        out += _lowpass(rng.normal(0, 1, n), 1500) * 0.5
    peak = float(np.max(np.abs(out))) or 1.0
    return (out / peak * _GAIN[spec.loudness]).astype(np.float32)


# ---- captions --------------------------------------------------------------------------------

_NOUNS: dict[Concept, tuple[str, ...]] = {
    "chime": ("chime", "chime sound", "set of chimes", "bell chime"),
    "doorbell": ("doorbell", "door bell", "ding-dong doorbell", "front door bell"),
    "beep": ("beep", "beeping", "electronic beep", "beeper"),
    "alarm": ("alarm", "siren", "alarm tone", "warning alarm"),
    "kettle": ("kettle whistle", "whistling kettle", "tea kettle", "kettle boiling"),
    "knock": ("knock", "knocking on a door", "door knock", "knocks"),
    "footsteps": ("footsteps", "steps", "walking", "someone walking"),
    "rain": ("rain", "rainfall", "rain on the window", "falling rain"),
    "wind": ("wind", "wind blowing", "breeze", "gusts of wind"),
    "fan": ("fan", "ceiling fan", "fan humming", "electric fan"),
    "music_box": ("music box", "music-box melody", "music box tune", "wind-up music box"),
}
_PITCH_WORDS = {"low": ("low", "deep"), "mid": ("medium-pitched", "mid"), "high": ("high", "high-pitched")}
_TEMPO_WORDS = {"slow": ("slow", "unhurried"), "medium": ("steady", "moderate"), "fast": ("fast", "rapid")}
_LOUD_WORDS = {"soft": ("soft", "quiet", "gentle"), "normal": ("clear", "plain"), "loud": ("loud", "urgent")}
_TEXTURE_WORDS = {"smooth": ("smooth", "mellow"), "bright": ("bright", "ringing"), "harsh": ("harsh", "buzzy")}
_NOTE_WORDS = {2: ("two-note", "two-tone"), 3: ("three-note", "three-tone"), 4: ("four-note", "four-tone")}
_MELODIC: frozenset[Concept] = frozenset({"chime", "doorbell", "music_box"})

# {l} loudness, {p} pitch, {t} tempo, {x} texture, {n} note count (melodic concepts), {c} the noun
_TEMPLATES: tuple[tuple[str, ...], tuple[str, ...]] = (
    (
        "a {l} {p} {n}{c}",
        "{l} {x} {n}{c}, {t}",
        "the sound of a {t} {p} {n}{c}",
        "{x} {n}{c} that is {l} and {p}, at a {t} pace",
    ),
    (
        "a {l}, {x} {n}{c} at a {t} pace",
        "play a {p} {n}{c}, {l}",
        "I want to hear a {t}, {x} {n}{c}",
        "{n}{c}: {l}, {p}, {x}",
    ),
)


def caption(spec: SoundSpec, rng: np.random.Generator, paraphrase: int = 0) -> str:
    """One wording of ``spec`` (without its duration: that is a request parameter)."""

    def pick(words: tuple[str, ...]) -> str:
        return words[int(rng.integers(len(words)))]

    template = pick(_TEMPLATES[paraphrase])
    notes = f"{pick(_NOTE_WORDS[spec.notes])} " if spec.concept in _MELODIC else ""
    return " ".join(
        template.format(
            l=pick(_LOUD_WORDS[spec.loudness]),
            p=pick(_PITCH_WORDS[spec.pitch]),
            t=pick(_TEMPO_WORDS[spec.tempo]),
            x=pick(_TEXTURE_WORDS[spec.texture]),
            n=notes,
            c=pick(_NOUNS[spec.concept]),
        ).split()
    )
