"""Deterministic smart-home corpus: natural commands -> JSON tool calls.

A home schema of rooms and devices, several phrasings per action, compound
commands of one to three actions ("dim the kitchen lights to 30% and lock the
front door"), and short conversational turns answered in plain text.  The
target for a command is a compact JSON list of calls, each
``{"call": "<device>.<action>", ...arguments}``.

The held-out split is defined by a hash of the command text, so no held-out
command is ever generated for training, whatever the seed or sample count.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Split = Literal["train", "test"]

ROOMS = (
    "kitchen",
    "living room",
    "bedroom",
    "bathroom",
    "office",
    "garage",
    "hallway",
    "dining room",
    "kids room",
    "basement",
)
THERMOSTAT_ROOMS = ("living room", "bedroom", "office", "kids room", "basement")
BLIND_ROOMS = ("kitchen", "living room", "bedroom", "office", "dining room", "kids room")
SPEAKER_ROOMS = ("kitchen", "living room", "bedroom", "office", "bathroom")
DOORS = ("front", "back", "garage", "patio")
COLORS = ("red", "blue", "green", "purple", "orange", "warm white", "cool white", "pink")
GENRES = ("jazz", "rock", "classical", "pop", "lo-fi", "news", "podcasts", "ambient")
FAN_SPEEDS = ("low", "medium", "high")


@dataclass(frozen=True)
class Example:
    prompt: str
    target: str
    # (role, content) turns to answer instead of the lone user turn ``prompt`` (the agent-role corpus)
    context: tuple[tuple[str, str], ...] = ()


Call = dict[str, Any]
Action = tuple[str, Call]


def _pick(rng: random.Random, options: tuple[str, ...]) -> str:
    return rng.choice(options)


def _lights(rng: random.Random) -> Action:
    room = _pick(rng, ROOMS)
    kind = rng.randrange(4)
    if kind == 0:
        level = rng.randrange(5, 100, 5)
        phrase = _pick(
            rng,
            (
                "dim the {r} lights to {n}%",
                "set the {r} lights to {n} percent",
                "{r} lights at {n}%",
                "bring the lights in the {r} down to {n}%",
                "make the {r} lights {n}% bright",
            ),
        )
        return phrase.format(r=room, n=level), {"call": "lights.dim", "room": room, "level": level}
    if kind == 1:
        color = _pick(rng, COLORS)
        phrase = _pick(rng, ("make the {r} lights {c}", "set the {r} lights to {c}", "turn the {r} lights {c}"))
        return phrase.format(r=room, c=color), {"call": "lights.color", "room": room, "color": color}
    on = kind == 2
    phrase = _pick(
        rng,
        (
            "turn {s} the {r} lights",
            "switch the {r} lights {s}",
            "turn the lights in the {r} {s}",
            "lights {s} in the {r}",
        ),
    )
    return phrase.format(r=room, s="on" if on else "off"), {"call": "lights.on" if on else "lights.off", "room": room}


def _thermostat(rng: random.Random) -> Action:
    room = _pick(rng, THERMOSTAT_ROOMS)
    temp = rng.randrange(16, 29)
    phrase = _pick(
        rng,
        (
            "set the {r} thermostat to {t} degrees",
            "make it {t} degrees in the {r}",
            "heat the {r} to {t}",
            "{r} temperature {t}",
            "change the {r} temperature to {t} degrees",
        ),
    )
    return phrase.format(r=room, t=temp), {"call": "thermostat.set", "room": room, "celsius": temp}


def _lock(rng: random.Random) -> Action:
    door = _pick(rng, DOORS)
    lock = rng.random() < 0.5
    verb = "lock" if lock else "unlock"
    phrase = _pick(rng, ("{v} the {d} door", "please {v} the {d} door", "{d} door {v}"))
    return phrase.format(v=verb, d=door), {"call": f"door.{verb}", "door": door}


def _blinds(rng: random.Random) -> Action:
    room = _pick(rng, BLIND_ROOMS)
    kind = rng.randrange(3)
    if kind == 2:
        pos = rng.randrange(10, 100, 10)
        phrase = _pick(rng, ("set the {r} blinds to {n}%", "open the {r} blinds {n} percent"))
        return phrase.format(r=room, n=pos), {"call": "blinds.set", "room": room, "position": pos}
    verb = "open" if kind == 0 else "close"
    phrase = _pick(rng, ("{v} the {r} blinds", "{v} the blinds in the {r}"))
    return phrase.format(v=verb, r=room), {"call": f"blinds.{verb}", "room": room}


def _fan(rng: random.Random) -> Action:
    room = _pick(rng, ROOMS)
    if rng.random() < 0.5:
        speed = _pick(rng, FAN_SPEEDS)
        phrase = _pick(rng, ("set the {r} fan to {s}", "{r} fan on {s}", "run the fan in the {r} on {s}"))
        return phrase.format(r=room, s=speed), {"call": "fan.speed", "room": room, "speed": speed}
    on = rng.random() < 0.5
    phrase = _pick(rng, ("turn {s} the {r} fan", "switch the fan in the {r} {s}"))
    return phrase.format(r=room, s="on" if on else "off"), {"call": "fan.on" if on else "fan.off", "room": room}


def _speaker(rng: random.Random) -> Action:
    room = _pick(rng, SPEAKER_ROOMS)
    kind = rng.randrange(3)
    if kind == 0:
        genre = _pick(rng, GENRES)
        phrase = _pick(rng, ("play {g} in the {r}", "put on some {g} in the {r}", "{r} speaker play {g}"))
        return phrase.format(g=genre, r=room), {"call": "speaker.play", "room": room, "genre": genre}
    if kind == 1:
        vol = rng.randrange(0, 101, 10)
        phrase = _pick(rng, ("set the {r} volume to {n}", "{r} speaker volume {n}", "turn the {r} music to {n}"))
        return phrase.format(r=room, n=vol), {"call": "speaker.volume", "room": room, "level": vol}
    phrase = _pick(rng, ("stop the music in the {r}", "pause the {r} speaker"))
    return phrase.format(r=room), {"call": "speaker.stop", "room": room}


ACTIONS: tuple[Callable[[random.Random], Action], ...] = (
    _lights,
    _lights,
    _thermostat,
    _lock,
    _blinds,
    _fan,
    _speaker,
)
JOINERS = (" and ", ", then ", " and also ", ", ")

CHAT: tuple[tuple[tuple[str, ...], str], ...] = (
    (("hello", "hi", "hey there", "good morning", "good evening"), "Hi! What should I do at home?"),
    (("thanks", "thank you", "thanks a lot", "cheers"), "You're welcome."),
    (
        ("what can you do", "help", "what do you control"),
        "I control lights, thermostats, doors, blinds, fans and speakers.",
    ),
    (("what's the weather", "tell me a joke", "who won the game"), "Sorry, I can only control your home."),
    (("never mind", "cancel", "forget it"), "Okay, nothing changed."),
)


def _chat(rng: random.Random) -> Example:
    prompts, reply = rng.choice(CHAT)
    prompt = rng.choice(prompts)
    if rng.random() < 0.3:
        prompt = prompt.capitalize()
    return Example(prompt, reply)


def _command(rng: random.Random) -> Example:
    n = rng.choices((1, 2, 3), weights=(0.5, 0.38, 0.12))[0]
    phrases, calls = [], []
    for _ in range(n):
        phrase, call = rng.choice(ACTIONS)(rng)
        phrases.append(phrase)
        calls.append(call)
    text = phrases[0]
    for p in phrases[1:]:
        text += rng.choice(JOINERS) + p
    if rng.random() < 0.15:
        text = "please " + text
    if rng.random() < 0.25:
        text = text[0].upper() + text[1:]
    return Example(text, format_calls(calls))


def format_calls(calls: list[Call]) -> str:
    return json.dumps(calls, separators=(",", ":"))


def split_of(prompt: str) -> Split:
    digest = hashlib.sha256(prompt.lower().encode()).digest()
    return "test" if digest[0] < 26 else "train"  # ~10% held out


def examples(seed: int, split: Split) -> Iterator[Example]:
    """Endless deterministic stream of examples belonging to ``split``."""
    rng = random.Random(seed)
    while True:
        ex = _chat(rng) if rng.random() < 0.1 else _command(rng)
        if split_of(ex.prompt) == split:
            yield ex


def take(seed: int, split: Split, n: int) -> list[Example]:
    it = examples(seed, split)
    return [next(it) for _ in range(n)]


def eval_set(n: int = 300) -> list[Example]:
    """The fixed held-out set every report uses (seed 12345, unique prompts)."""
    seen: set[str] = set()
    out: list[Example] = []
    for ex in examples(12345, "test"):
        if ex.prompt not in seen:
            seen.add(ex.prompt)
            out.append(ex)
            if len(out) == n:
                return out
    raise AssertionError("unreachable: examples() is endless")
