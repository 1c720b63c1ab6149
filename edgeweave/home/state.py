"""The simulated house: typed devices per room, sensors, scenes, schedules and occupants' preferences.

A :class:`HomeState` is a frozen pydantic value; tools (:mod:`edgeweave.home.tools`) return a new
state, so a run's every step can be kept, diffed and carried across a migration as data.  The rooms,
doors, colours and genres are the smart-home corpus's (:mod:`edgeweave.data.smarthome`), so the
weave-home models already speak this house's language.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeweave.data.smarthome import BLIND_ROOMS, DOORS, FAN_SPEEDS, ROOMS, SPEAKER_ROOMS, THERMOSTAT_ROOMS

FanSpeed = Literal["low", "medium", "high"]
OCCUPANTS = ("ana", "ben", "chloe")


class _Device(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Light(_Device):
    on: bool = False
    level: int = Field(default=100, ge=0, le=100)
    color: str = "warm white"


class Blind(_Device):
    position: int = Field(default=0, ge=0, le=100)  # 0 closed, 100 open


class Door(_Device):
    locked: bool = True
    open: bool = False  # the contact sensor: a garage door left open reads true


class Thermostat(_Device):
    celsius: int = Field(default=20, ge=10, le=30)
    reading: float = 20.0  # the room's measured temperature (a sensor: no tool sets it)


class Fan(_Device):
    on: bool = False
    speed: FanSpeed = "low"


class Speaker(_Device):
    playing: str | None = None
    volume: int = Field(default=30, ge=0, le=100)


class Preferences(_Device):
    celsius: int = Field(ge=16, le=28)
    genre: str
    light_level: int = Field(ge=5, le=100)


class ScheduledCall(_Device):
    at: str  # "HH:MM", the home's local time
    name: str  # the tool to call then
    arguments: dict[str, str | int]


class HomeState(BaseModel):
    """Everything an agent can read or change, and what the house senses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lights: dict[str, Light]
    blinds: dict[str, Blind]
    doors: dict[str, Door]
    thermostats: dict[str, Thermostat]
    fans: dict[str, Fan]
    speakers: dict[str, Speaker]
    motion: dict[str, bool]  # per room: someone is there
    preferences: dict[str, Preferences]  # per occupant
    schedules: tuple[ScheduledCall, ...] = ()
    questions: tuple[str, ...] = ()  # what agents asked the occupants (an ambiguous request needs one)

    def flat(self) -> dict[str, object]:
        """``"lights.kitchen.level" -> 30``: the state as comparable leaves (the checker's view)."""
        out: dict[str, object] = {}
        for group in ("lights", "blinds", "doors", "thermostats", "fans", "speakers", "preferences"):
            for place, device in getattr(self, group).items():
                for key, value in device.model_dump().items():
                    out[f"{group}.{place}.{key}"] = value
        for room, seen in self.motion.items():
            out[f"motion.{room}"] = seen
        out["schedules"] = tuple(sorted((s.at, s.name, tuple(sorted(s.arguments.items()))) for s in self.schedules))
        out["asked"] = bool(self.questions)
        return out


def random_home(rng: random.Random) -> HomeState:
    """A house in a random but plausible state (the start of a task)."""
    return HomeState(
        lights={
            r: Light(
                on=rng.random() < 0.4, level=rng.randrange(10, 101, 10), color=rng.choice(("warm white", "cool white"))
            )
            for r in ROOMS
        },
        blinds={r: Blind(position=rng.choice((0, 0, 50, 100))) for r in BLIND_ROOMS},
        doors={d: Door(locked=rng.random() < 0.7, open=d in ("garage", "patio") and rng.random() < 0.4) for d in DOORS},
        thermostats={
            r: Thermostat(celsius=rng.randrange(18, 23), reading=round(rng.uniform(16.0, 25.0), 1))
            for r in THERMOSTAT_ROOMS
        },
        fans={r: Fan(on=rng.random() < 0.2, speed=rng.choice(FAN_SPEEDS)) for r in ROOMS},
        speakers={r: Speaker(volume=rng.randrange(10, 61, 10)) for r in SPEAKER_ROOMS},
        motion={r: rng.random() < 0.3 for r in ROOMS},
        preferences={
            p: Preferences(
                celsius=rng.randrange(18, 25),
                genre=rng.choice(("jazz", "rock", "classical", "pop", "lo-fi")),
                light_level=rng.randrange(20, 81, 10),
            )
            for p in OCCUPANTS
        },
    )
