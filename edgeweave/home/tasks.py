"""The generated suite of household tasks, with difficulty levels and a hidden test split.

A task is a request in words, the house as it starts, the goal state, and a reference solution:
its *steps* (the clauses a planner should split it into, each with the tool calls that do it).
The level is the reference's number of tool calls, 1 to 8.  Clauses are plain actions (the
smart-home corpus's phrasings), conditionals ("if the garage door is open, close it": a read, then
an action only if the house says so), schedules ("at 22:30, ..."), scenes, occupants' preferences
(a read of the preference, then the action) and ambiguous references ("turn on the lights": the
right answer is a question back, and no change to what it might mean).  No two clauses touch one
device, so the goal does not depend on their order.

Splits come from a salted hash of the request text (80% train, 10% test, 10% hidden): the
role corpus trains on train only, the benchmark reports test, and the hidden split is for runs
nothing here was tuned on (``--split hidden``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeweave.data.smarthome import ACTIONS, DOORS, JOINERS, ROOMS, SPEAKER_ROOMS, THERMOSTAT_ROOMS
from edgeweave.home.state import OCCUPANTS, HomeState, random_home
from edgeweave.home.tools import call_tool, devices_of

Split = Literal["train", "test", "hidden"]
Feature = Literal["conditional", "schedule", "scene", "preference", "ambiguous", "cross-room"]
MAX_LEVEL = 8
Args = dict[str, str | int]


class Call(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    arguments: Args


class Step(BaseModel):
    """One clause of a request and the calls that carry it out (reads included)."""

    model_config = ConfigDict(frozen=True)
    text: str
    calls: tuple[Call, ...]
    feature: Feature | None = None
    devices: frozenset[str] = Field(default_factory=frozenset)  # what it may change ("lights.kitchen")


class Task(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    request: str
    level: int = Field(ge=1, le=MAX_LEVEL)
    features: frozenset[Feature]
    split: Split
    initial: HomeState
    goal: HomeState
    steps: tuple[Step, ...]

    @property
    def calls(self) -> list[Call]:
        return [c for s in self.steps for c in s.calls]


def split_of(request: str) -> Split:
    b = hashlib.sha256(b"home-tasks:" + request.lower().encode()).digest()[0]
    return "test" if b < 26 else "hidden" if b < 52 else "train"


def _step(text: str, calls: list[Call], feature: Feature | None = None) -> Step:
    devices = frozenset(d for c in calls for d in devices_of(c.name, dict(c.arguments)))
    return Step(text=text, calls=tuple(calls), feature=feature, devices=devices)


def _action(rng: random.Random, state: HomeState) -> Step:
    phrase, corpus_call = rng.choice(ACTIONS)(rng)
    args = {k: v for k, v in corpus_call.items() if k != "call"}
    return _step(phrase, [Call(name=str(corpus_call["call"]).replace(".", "_"), arguments=args)])


def _read(kind: str, place: str) -> Call:
    return Call(name="home_read", arguments={"kind": kind, "place": place})


def _conditional(rng: random.Random, state: HomeState) -> Step:
    kind = rng.randrange(4)
    if kind == 0:
        door = rng.choice(("garage", "patio"))
        text = rng.choice(("if the {d} door is open, close it", "close the {d} door if it is open")).format(d=door)
        act = Call(name="door_close", arguments={"door": door})
        holds, read = state.doors[door].open, _read("door", door)
    elif kind == 1:
        door = rng.choice(DOORS)
        text = rng.choice(("if the {d} door is unlocked, lock it", "lock the {d} door if it is unlocked")).format(
            d=door
        )
        act = Call(name="door_lock", arguments={"door": door})
        holds, read = not state.doors[door].locked, _read("door", door)
    elif kind == 2:
        room = rng.choice(ROOMS)
        text = rng.choice(
            ("if someone is in the {r}, turn on the {r} lights", "turn on the {r} lights if there is motion in the {r}")
        ).format(r=room)
        act = Call(name="lights_on", arguments={"room": room})
        holds, read = state.motion[room], _read("motion", room)
    else:
        room = rng.choice(THERMOSTAT_ROOMS)
        below, target = rng.randrange(17, 23), rng.randrange(20, 25)
        text = f"if the {room} is colder than {below} degrees, set the {room} thermostat to {target} degrees"
        act = Call(name="thermostat_set", arguments={"room": room, "celsius": target})
        holds, read = state.thermostats[room].reading < below, _read("temperature", room)
    step = _step(text, [read, act], "conditional")  # devices: what it may change, whichever way it goes
    return step if holds else step.model_copy(update={"calls": (read,)})


def _schedule(rng: random.Random, state: HomeState) -> Step:
    inner = _action(rng, state)
    at = f"{rng.randrange(6, 24):02d}:{rng.choice((0, 15, 30, 45)):02d}"
    call = inner.calls[0]
    text = rng.choice(("at {t}, {p}", "{p} at {t}")).format(t=at, p=inner.text)
    return _step(text, [Call(name=call.name, arguments={**call.arguments, "at": at})], "schedule")


SCENE_PHRASES = {
    "movie night": ("get the house ready for movie night", "movie night mode", "set up movie night"),
    "good night": ("good night", "we are going to bed", "set the house for the night"),
    "morning": ("good morning routine", "start the morning scene"),
    "away": ("we are leaving, set the house to away", "away mode"),
}


def _scene(rng: random.Random, state: HomeState) -> Step:
    name = rng.choice(tuple(SCENE_PHRASES))
    return _step(rng.choice(SCENE_PHRASES[name]), [Call(name="scene_activate", arguments={"name": name})], "scene")


def _preference(rng: random.Random, state: HomeState) -> Step:
    person = rng.choice(OCCUPANTS)
    prefs, get = state.preferences[person], Call(name="preferences_get", arguments={"person": person})
    kind = rng.randrange(3)
    if kind == 0:
        room = rng.choice(THERMOSTAT_ROOMS)
        text = f"set the {room} to {person}'s preferred temperature"
        act = Call(name="thermostat_set", arguments={"room": room, "celsius": prefs.celsius})
    elif kind == 1:
        room = rng.choice(SPEAKER_ROOMS)
        text = f"play {person}'s favourite music in the {room}"
        act = Call(name="speaker_play", arguments={"room": room, "genre": prefs.genre})
    else:
        room = rng.choice(ROOMS)
        text = f"set the {room} lights the way {person} likes them"
        act = Call(name="lights_dim", arguments={"room": room, "level": prefs.light_level})
    return _step(text, [get, act], "preference")


AMBIGUOUS = (
    ("turn on the lights", "Which room's lights should I turn on?"),
    ("lock the door", "Which door should I lock?"),
    ("set the thermostat to 21 degrees", "Which room's thermostat should I set?"),
    ("play some music", "Which room should the music play in?"),
    ("open the blinds", "Which room's blinds should I open?"),
    ("turn the fan off", "Which room's fan should I turn off?"),
)


def _ambiguous(rng: random.Random, state: HomeState) -> Step:
    text, question = rng.choice(AMBIGUOUS)
    return _step(text, [Call(name="ask_user", arguments={"question": question})], "ambiguous")


ClauseMaker = Callable[[random.Random, HomeState], Step]
CLAUSES: tuple[tuple[ClauseMaker, float], ...] = (
    (_action, 0.45),
    (_conditional, 0.2),
    (_schedule, 0.12),
    (_preference, 0.13),
    (_scene, 0.1),
    (_ambiguous, 0.05),  # beside clear clauses: do those, and ask about this one
)


def _rooms(steps: list[Step]) -> set[str]:
    return {d.split(".", 1)[1] for s in steps for d in s.devices}


def make_task(seed: int, level: int) -> Task:
    """The task of this seed at this level (deterministic; its split is whatever its text hashes to)."""
    rng = random.Random(seed * 7919 + level)
    initial = random_home(rng)
    if level == 1 and rng.random() < 0.2:
        steps = [_ambiguous(rng, initial)]
    else:
        steps, touched, calls = [], set(), 0
        makers, weights = zip(*CLAUSES, strict=True)
        while calls < level:
            step = rng.choices(makers, weights)[0](rng, initial)
            asked = step.feature == "ambiguous" and any(s.feature == "ambiguous" for s in steps)
            if step.devices & touched or len(step.calls) > level - calls or asked:
                continue
            steps.append(step)
            touched |= step.devices
            calls += len(step.calls)
    text = steps[0].text
    for s in steps[1:]:
        text += rng.choice(JOINERS) + s.text
    if rng.random() < 0.2:
        text = "please " + text
    goal = initial
    for step in steps:
        for call in step.calls:
            goal, _ = call_tool(goal, call.name, dict(call.arguments))
    features: set[Feature] = {s.feature for s in steps if s.feature is not None}
    if len(_rooms(steps)) > 1:
        features.add("cross-room")
    return Task(
        id=f"t{seed}-L{level}",
        request=text,
        level=level,
        features=frozenset(features),
        split=split_of(text),
        initial=initial,
        goal=goal,
        steps=tuple(steps),
    )


def tasks(split: Split, seed: int = 0) -> Iterator[Task]:
    """Endless tasks of ``split``, levels cycling 1..8, unique requests."""
    seen: set[str] = set()
    i = seed * 1_000_003
    while True:
        i += 1
        task = make_task(i, 1 + i % MAX_LEVEL)
        if task.split == split and task.request not in seen:
            seen.add(task.request)
            yield task


def suite(split: Split, per_level: int, seed: int = 0) -> list[Task]:
    """``per_level`` tasks at each level 1..8 (the benchmark's workload)."""
    by_level: dict[int, list[Task]] = {lv: [] for lv in range(1, MAX_LEVEL + 1)}
    for task in tasks(split, seed):
        if len(by_level[task.level]) < per_level:
            by_level[task.level].append(task)
        if all(len(v) == per_level for v in by_level.values()):
            return [t for lv in sorted(by_level) for t in by_level[lv]]
    raise AssertionError("unreachable: tasks() is endless")
