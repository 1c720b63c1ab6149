"""Per-household smart-home corpora: the data each tLoRA job (arXiv 2602.07263) fine-tunes on.

Every home names its rooms and devices its own way and has its own routines.  A
:class:`Household` follows from ``(name, seed)`` alone and holds, on top of the smart-home grammar
of :mod:`edgeweave.data.smarthome` (whose action generators, joiners and chat turns are reused):

- **renamed rooms**: three to five rooms called the household's way ("the den" for the living
  room, "Ziggy's room" for the kids room).  The household's name *is* the room's id in its home:
  the JSON targets name the room by it, lowercased (``{"call":"lights.on","room":"den"}``), so an
  answer is right only if the model learned the household's schema;
- **device nicknames**: two or three devices called by a name of their own ("Breezy" for the
  kitchen fan, "the red door" for the front door).  A nickname is an alias: the target keeps the
  device's room (under the household's id) or door;
- **scenes and routines**: two or three phrases ("movie mode", "leaving for work") that each
  stand for a fixed list of calls, alone or followed by another command;
- **phrasing habits**: verbs the household prefers ("flick" for "turn", "shut" for "close"),
  openers ("hey house,") and closers (", thanks").

The held-out split is :func:`edgeweave.data.smarthome.split_of` of the household's own prompt
text, so no held-out command is ever generated for training, whatever the seed or sample count.
A model's exact match on it: :func:`edgeweave.generation.evaluate.household_exact_match`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Literal

from edgeweave.data.smarthome import (
    ACTIONS,
    BLIND_ROOMS,
    CHAT,
    DOORS,
    JOINERS,
    ROOMS,
    SPEAKER_ROOMS,
    THERMOSTAT_ROOMS,
    Call,
    Example,
    Split,
    format_calls,
    split_of,
)

Kind = Literal["scene", "renamed", "plain", "chat"]  # what an example exercises (scene > renamed > plain)

KIDS = ("Ziggy", "Mia", "Leo", "Noor", "Otis", "Ada", "Finn", "Luna")
ROOM_NAMES: dict[str, tuple[str, ...]] = {
    "kitchen": ("galley", "kitchenette", "cookhouse"),
    "living room": ("den", "lounge", "family room", "front room", "snug"),
    "bedroom": ("main bedroom", "loft", "sleeping room"),
    "bathroom": ("washroom", "powder room"),
    "office": ("study", "workroom", "library"),
    "garage": ("carport", "workshop"),
    "hallway": ("entry", "foyer", "corridor"),
    "dining room": ("breakfast nook", "eating area"),
    "kids room": tuple(f"{kid}'s room" for kid in KIDS),
    "basement": ("cellar", "rec room"),
}
# a device's word in the grammar's phrases, and the places (rooms or doors) that have one
DEVICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "lights": ("lights", ROOMS),
    "fan": ("fan", ROOMS),
    "speaker": ("speaker", SPEAKER_ROOMS),
    "thermostat": ("thermostat", THERMOSTAT_ROOMS),
    "blinds": ("blinds", BLIND_ROOMS),
    "door": ("door", DOORS),
}
NICKNAMES: dict[str, tuple[str, ...]] = {
    "lights": ("the fairy lights", "the big lamp", "the glow"),
    "fan": ("Breezy", "the whirlybird", "the cooler"),
    "speaker": ("the jukebox", "Bumblebee", "the boombox"),
    "thermostat": ("the nest", "the heater"),
    "blinds": ("the shades", "the curtains"),
    "door": ("the red door", "the gate", "the slider"),
}
SCENES: dict[str, tuple[str, ...]] = {  # a scene's name and the phrases that trigger it
    "movie mode": ("movie mode", "start movie mode", "movie mode on", "time for movie mode", "activate movie mode"),
    "leaving for work": ("leaving for work", "i'm leaving for work", "off to work", "heading to work now"),
    "good night": ("good night", "night night", "bedtime", "time for bed"),
    "dinner time": ("dinner time", "dinner is ready", "start dinner mode"),
    "wake up": ("wake up routine", "rise and shine", "morning routine"),
    "party mode": ("party mode", "party time", "let's party"),
    "reading time": ("reading mode", "time to read", "reading time"),
    "coming home": ("i'm home", "coming home", "home again"),
}
VERBS = (
    ("turn", "flick"),
    ("switch", "flip"),
    ("set", "put"),
    ("close", "shut"),
    ("play", "throw on"),
    ("make", "get"),
)
OPENERS = ("hey house, ", "ok so ", "could you ", "yo, ", "right, ", "kindly ")
CLOSERS = (", thanks", " please", ", cheers", " pronto", " if you would")
P_NICKNAME = 0.8  # how often a household uses a device's nickname where a phrase names the device
P_OPENER, P_CLOSER = 0.4, 0.25
SEARCH_PER_PROMPT = 50


@dataclass(frozen=True)
class Room:
    canonical: str  # the grammar's name ("living room")
    name: str  # the household's ("den", "Ziggy's room")

    @property
    def id(self) -> str:
        """How the household's home schema (and so every JSON target) names the room."""
        return self.name.lower()

    @property
    def with_article(self) -> str:
        return self.name if "'s " in self.name else f"the {self.name}"


@dataclass(frozen=True)
class Nickname:
    kind: str  # a key of DEVICES
    place: str  # its room (the grammar's name) or door
    name: str


@dataclass(frozen=True)
class Scene:
    name: str
    triggers: tuple[str, ...]
    calls: tuple[Call, ...]  # with the household's room ids


@dataclass(frozen=True)
class Habits:
    verbs: tuple[tuple[str, str], ...]  # (the grammar's verb, the household's)
    openers: tuple[str, ...]
    closers: tuple[str, ...]

    def speak(self, phrase: str) -> str:
        for plain, own in self.verbs:
            phrase = re.sub(rf"\b{plain}\b", own, phrase)
        return phrase


@dataclass(frozen=True)
class Household:
    name: str
    seed: int
    rooms: tuple[Room, ...]  # the renamed ones; the others keep the grammar's name as their id
    nicknames: tuple[Nickname, ...]
    scenes: tuple[Scene, ...]
    habits: Habits

    def room(self, canonical: str) -> Room | None:
        return next((r for r in self.rooms if r.canonical == canonical), None)

    def nickname(self, kind: str, place: str) -> Nickname | None:
        return next((n for n in self.nicknames if n.kind == kind and n.place == place), None)


def household(name: str, seed: int) -> Household:
    """The household ``name`` of ``seed``: the same pair always gives the same household."""
    rng = random.Random(f"household:{name}:{seed}")
    renamed = rng.sample(ROOMS, rng.randint(3, 5))
    rooms = tuple(Room(c, rng.choice(ROOM_NAMES[c])) for c in ROOMS if c in renamed)
    nicknames: list[Nickname] = []
    for kind in rng.sample(sorted(DEVICES), rng.randint(2, 3)):
        nicknames.append(Nickname(kind, rng.choice(DEVICES[kind][1]), rng.choice(NICKNAMES[kind])))
    partial = Household(name, seed, rooms, tuple(nicknames), (), Habits((), (), ()))
    scenes = tuple(
        Scene(s, SCENES[s], _scene_calls(partial, rng)) for s in rng.sample(sorted(SCENES), rng.randint(2, 3))
    )
    habits = Habits(
        tuple(rng.sample(VERBS, rng.randint(1, 3))),
        tuple(rng.sample(OPENERS, rng.randint(1, 2))),
        tuple(rng.sample(CLOSERS, rng.randint(1, 2))),
    )
    return Household(name, seed, rooms, tuple(nicknames), scenes, habits)


def _in_household(h: Household, call: Call) -> Call:
    room = h.room(call["room"]) if "room" in call else None
    return {**call, "room": room.id} if room is not None else call


def _scene_calls(h: Household, rng: random.Random) -> tuple[Call, ...]:
    """Two to four calls on distinct devices, drawn from the grammar's actions."""
    calls: dict[tuple[str, str], Call] = {}
    want = rng.randint(2, 4)
    while len(calls) < want:
        _, call = rng.choice(ACTIONS)(rng)
        call = _in_household(h, call)
        calls.setdefault((call["call"].split(".")[0], str(call.get("room", call.get("door")))), call)
    return tuple(calls.values())


def _nicknamed(phrase: str, word: str, place: str, nickname: str) -> str:
    for pattern in (f"the {place} {word}", f"the {word} in the {place}", f"{place} {word}"):
        if re.search(rf"\b{re.escape(pattern)}\b", phrase):
            return re.sub(rf"\b{re.escape(pattern)}\b", nickname, phrase, count=1)
    return phrase


def _renamed(phrase: str, room: Room) -> str:
    phrase = re.sub(rf"\bthe {room.canonical}\b", room.with_article, phrase)
    return re.sub(rf"\b{room.canonical}\b", room.name, phrase)


def _action(h: Household, rng: random.Random) -> tuple[str, Call, bool]:
    """One of the grammar's actions, said the household's way: (phrase, call, whether the phrase
    used one of its own names)."""
    phrase, call = rng.choice(ACTIONS)(rng)
    phrase = h.habits.speak(phrase)
    kind = call["call"].split(".")[0]
    place = str(call.get("room", call.get("door")))
    own = False
    nick = h.nickname(kind, place)
    if nick is not None and rng.random() < P_NICKNAME:
        said = _nicknamed(phrase, DEVICES[kind][0], place, nick.name)
        own, phrase = said != phrase, said
    room = h.room(call["room"]) if "room" in call else None
    if room is not None:
        phrase = _renamed(phrase, room)
        own = own or room.name in phrase
    return phrase, _in_household(h, call), own


def _habitual(h: Household, rng: random.Random, text: str) -> str:
    if rng.random() < P_OPENER:
        text = rng.choice(h.habits.openers) + text
    if rng.random() < P_CLOSER:
        text += rng.choice(h.habits.closers)
    return text


def _example(h: Household, rng: random.Random) -> tuple[Kind, Example]:
    r = rng.random()
    if r < 0.05:
        prompts, reply = rng.choice(CHAT)
        return "chat", Example(rng.choice(prompts), reply)
    if r < 0.4:
        scene = rng.choice(h.scenes)
        text, calls = rng.choice(scene.triggers), list(scene.calls)
        if rng.random() < 0.3:
            phrase, call, _ = _action(h, rng)
            text += rng.choice(JOINERS) + phrase
            calls.append(call)
        return "scene", Example(_habitual(h, rng, text), format_calls(calls))
    phrases, calls, own = [], [], False
    for _ in range(rng.choices((1, 2, 3), weights=(0.5, 0.38, 0.12))[0]):
        phrase, call, said_own = _action(h, rng)
        phrases.append(phrase)
        calls.append(call)
        own = own or said_own
    text = phrases[0]
    for p in phrases[1:]:
        text += rng.choice(JOINERS) + p
    return ("renamed" if own else "plain"), Example(_habitual(h, rng, text), format_calls(calls))


def labelled(h: Household, split: Split) -> Iterator[tuple[Kind, Example]]:
    """Endless deterministic stream of ``h``'s examples in ``split``, each with its kind."""
    rng = random.Random(f"corpus:{h.name}:{h.seed}")
    while True:
        kind, ex = _example(h, rng)
        if split_of(ex.prompt) == split:
            yield kind, ex


def corpus(h: Household, split: Split, n: int, kinds: Collection[Kind] | None = None) -> list[Example]:
    """The first ``n`` examples of ``h``'s ``split`` (of ``kinds`` only, when given)."""
    out: list[Example] = []
    for kind, ex in labelled(h, split):
        if kinds is None or kind in kinds:
            out.append(ex)
            if len(out) == n:
                return out
    raise AssertionError("unreachable: labelled() is endless")


def held_out(h: Household, n: int, kinds: Collection[Kind] | None = None) -> list[Example]:
    """The first ``n`` distinct held-out prompts of ``h`` (of ``kinds`` only, when given), or fewer
    when the first ``SEARCH_PER_PROMPT * n`` held-out examples hold fewer (chat turns are few)."""
    seen: set[str] = set()
    out: list[Example] = []
    for _, (kind, ex) in zip(range(SEARCH_PER_PROMPT * n), labelled(h, "test"), strict=False):
        if (kinds is None or kind in kinds) and ex.prompt not in seen:
            seen.add(ex.prompt)
            out.append(ex)
            if len(out) == n:
                break
    return out
