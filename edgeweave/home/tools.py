"""The house's tools: typed arguments (their JSON schemas are what an agent is offered), and what each does.

Three kinds: *act* tools change a device, now or at a time (``at: "HH:MM"`` files a schedule entry
instead); *read* tools report a device, a sensor or an occupant's preferences; ``ask_user`` records a
question back to the occupants (an ambiguous request's right answer).  Names are the corpus's calls
with ``_`` for ``.`` (``lights.dim`` -> ``lights_dim``), arguments the corpus's own.  A call with bad
arguments changes nothing and returns the validation error, as a real device API would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeweave.data.smarthome import BLIND_ROOMS, COLORS, DOORS, GENRES, ROOMS, SPEAKER_ROOMS, THERMOSTAT_ROOMS
from edgeweave.generation.tools import FunctionDef, ToolDef
from edgeweave.home.state import OCCUPANTS, FanSpeed, HomeState, ScheduledCall

Room = Literal[ROOMS]  # type: ignore[valid-type]
ThermostatRoom = Literal[THERMOSTAT_ROOMS]  # type: ignore[valid-type]
BlindRoom = Literal[BLIND_ROOMS]  # type: ignore[valid-type]
SpeakerRoom = Literal[SPEAKER_ROOMS]  # type: ignore[valid-type]
DoorName = Literal[DOORS]  # type: ignore[valid-type]
Color = Literal[COLORS]  # type: ignore[valid-type]
Genre = Literal[GENRES]  # type: ignore[valid-type]
Person = Literal[OCCUPANTS]  # type: ignore[valid-type]
Kind = Literal["act", "read", "ask"]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Act(_Args):
    at: str | None = Field(default=None, pattern=HHMM, description="HH:MM: do it then instead of now")


class RoomArgs(_Act):
    room: Room


class DimArgs(RoomArgs):
    level: int = Field(ge=0, le=100)


class ColorArgs(RoomArgs):
    color: Color


class ThermostatArgs(_Act):
    room: ThermostatRoom
    celsius: int = Field(ge=16, le=28)


class DoorArgs(_Act):
    door: DoorName


class BlindArgs(_Act):
    room: BlindRoom


class BlindSetArgs(BlindArgs):
    position: int = Field(ge=0, le=100)


class FanSpeedArgs(RoomArgs):
    speed: FanSpeed


class SpeakerArgs(_Act):
    room: SpeakerRoom


class PlayArgs(SpeakerArgs):
    genre: Genre


class VolumeArgs(SpeakerArgs):
    level: int = Field(ge=0, le=100)


class SceneArgs(_Act):
    name: Literal["movie night", "good night", "morning", "away"]


class ReadArgs(_Args):
    kind: Literal["door", "motion", "temperature", "lights"]
    place: str = Field(min_length=1, max_length=32, description="a room, or a door's name for kind door")


class PersonArgs(_Args):
    person: Person


class AskArgs(_Args):
    question: str = Field(min_length=3, max_length=120)


class ToolError(ValueError):
    """A call the house refuses (unknown tool, bad arguments, no such device)."""


Apply = Callable[[HomeState, BaseModel], HomeState]


def _set(state: HomeState, group: str, place: str, **changes: object) -> HomeState:
    devices = dict(getattr(state, group))
    if place not in devices:
        raise ToolError(f"no {group} in {place!r}")
    devices[place] = devices[place].model_copy(update=changes)
    return state.model_copy(update={group: devices})


# scenes are calls the house makes when one is activated (their effect is these calls' effect)
SCENES: dict[str, tuple[tuple[str, dict[str, str | int]], ...]] = {
    "movie night": (
        ("lights_dim", {"room": "living room", "level": 20}),
        ("blinds_close", {"room": "living room"}),
        ("speaker_stop", {"room": "living room"}),
        ("lights_off", {"room": "kitchen"}),
    ),
    "good night": (
        ("lights_off", {"room": "living room"}),
        ("lights_off", {"room": "hallway"}),
        ("door_lock", {"door": "front"}),
        ("door_lock", {"door": "back"}),
        ("thermostat_set", {"room": "bedroom", "celsius": 18}),
    ),
    "morning": (
        ("blinds_open", {"room": "kitchen"}),
        ("lights_on", {"room": "kitchen"}),
        ("speaker_play", {"room": "kitchen", "genre": "news"}),
    ),
    "away": (
        ("door_lock", {"door": "front"}),
        ("door_lock", {"door": "back"}),
        ("door_close", {"door": "garage"}),
        ("door_lock", {"door": "garage"}),
        ("thermostat_set", {"room": "living room", "celsius": 16}),
    ),
}


def _scene(state: HomeState, a: BaseModel) -> HomeState:
    assert isinstance(a, SceneArgs)
    for name, arguments in SCENES[a.name]:
        state = TOOLS[name].apply(state, TOOLS[name].args.model_validate(arguments))
    return state


def _room(group: str, copy: dict[str, str] | None = None, **fixed: object) -> Apply:
    """Set a room's device: ``fixed`` values, and ``copy`` (device field -> argument) from the call."""

    def apply(state: HomeState, a: BaseModel) -> HomeState:
        copied = {field: getattr(a, arg) for field, arg in (copy or {}).items()}
        return _set(state, group, a.room, **fixed, **copied)  # type: ignore[attr-defined]

    return apply


def _door(**changes: object) -> Apply:
    return lambda s, a: _set(s, "doors", a.door, **changes)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    kind: Kind
    args: type[BaseModel]
    apply: Apply | None = None  # act tools

    def definition(self) -> ToolDef:
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        return ToolDef(function=FunctionDef(name=self.name, description=self.description, parameters=schema))


_ACT_TOOLS = (
    Tool("lights_on", "Turn a room's lights on.", "act", RoomArgs, _room("lights", on=True)),
    Tool("lights_off", "Turn a room's lights off.", "act", RoomArgs, _room("lights", on=False)),
    Tool("lights_dim", "Set a room's lights to a brightness (0-100).", "act", DimArgs,
         _room("lights", {"level": "level"}, on=True)),
    Tool("lights_color", "Set a room's light colour.", "act", ColorArgs, _room("lights", {"color": "color"}, on=True)),
    Tool("thermostat_set", "Set a room's thermostat (Celsius).", "act", ThermostatArgs,
         _room("thermostats", {"celsius": "celsius"})),
    Tool("door_lock", "Lock a door.", "act", DoorArgs, _door(locked=True)),
    Tool("door_unlock", "Unlock a door.", "act", DoorArgs, _door(locked=False)),
    Tool("door_close", "Close a door that is open (the garage door).", "act", DoorArgs, _door(open=False)),
    Tool("blinds_open", "Open a room's blinds.", "act", BlindArgs, _room("blinds", position=100)),
    Tool("blinds_close", "Close a room's blinds.", "act", BlindArgs, _room("blinds", position=0)),
    Tool("blinds_set", "Open a room's blinds to a position (0-100).", "act", BlindSetArgs,
         _room("blinds", {"position": "position"})),
    Tool("fan_on", "Turn a room's fan on.", "act", RoomArgs, _room("fans", on=True)),
    Tool("fan_off", "Turn a room's fan off.", "act", RoomArgs, _room("fans", on=False)),
    Tool("fan_speed", "Run a room's fan at a speed.", "act", FanSpeedArgs, _room("fans", {"speed": "speed"}, on=True)),
    Tool("speaker_play", "Play a genre on a room's speaker.", "act", PlayArgs, _room("speakers", {"playing": "genre"})),
    Tool("speaker_volume", "Set a room's speaker volume (0-100).", "act", VolumeArgs,
         _room("speakers", {"volume": "level"})),
    Tool("speaker_stop", "Stop a room's speaker.", "act", SpeakerArgs, _room("speakers", playing=None)),
    Tool("scene_activate", "Activate a scene.", "act", SceneArgs, _scene),
)  # fmt: skip
TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        *_ACT_TOOLS,
        Tool("home_read", "Read a door, a room's motion sensor, temperature or lights.", "read", ReadArgs),
        Tool("preferences_get", "An occupant's preferred temperature, music and light level.", "read", PersonArgs),
        Tool("ask_user", "Ask the occupants a question when the request is ambiguous.", "ask", AskArgs),
    )
}


_GROUPS = {"lights": "lights", "thermostat": "thermostats", "door": "doors", "blinds": "blinds", "fan": "fans",
           "speaker": "speakers"}  # fmt: skip


def devices_of(name: str, arguments: dict[str, object]) -> set[str]:
    """The devices an act call changes (``lights.kitchen``; a scene's calls' devices); none for the others."""
    if name == "scene_activate":
        return {d for n, a in SCENES.get(str(arguments.get("name")), ()) for d in devices_of(n, dict(a))}
    tool = TOOLS.get(name)
    if tool is None or tool.kind != "act":
        return set()
    return {f"{_GROUPS[name.split('_')[0]]}.{arguments.get('room', arguments.get('door'))}"}


def tool_definitions() -> list[ToolDef]:
    return [t.definition() for t in TOOLS.values()]


def _read(state: HomeState, a: ReadArgs) -> dict[str, object]:
    table = {"door": state.doors, "lights": state.lights, "temperature": state.thermostats}
    if a.kind == "motion":
        if a.place not in state.motion:
            raise ToolError(f"no motion sensor in {a.place!r}")
        return {"motion": state.motion[a.place]}
    devices = table[a.kind]
    if a.place not in devices:
        raise ToolError(f"no {a.kind} in {a.place!r}")
    device = devices[a.place].model_dump()
    return {"reading": device["reading"]} if a.kind == "temperature" else device


def call_tool(state: HomeState, name: str, arguments: str | dict[str, object]) -> tuple[HomeState, str]:
    """Run one call: the new state and the tool's reply (JSON text).  Raises :class:`ToolError`."""
    tool = TOOLS.get(name)
    if tool is None:
        raise ToolError(f"unknown tool {name!r}")
    try:
        raw = json.loads(arguments) if isinstance(arguments, str) else arguments
        args = tool.args.model_validate(raw)
    except json.JSONDecodeError as e:
        raise ToolError(f"{name}: arguments are not JSON ({e})") from None
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in e.errors())
        raise ToolError(f"{name}: bad arguments: {problems}") from None
    if tool.kind == "ask":
        assert isinstance(args, AskArgs)
        return state.model_copy(update={"questions": (*state.questions, args.question)}), '{"asked":true}'
    if tool.kind == "read":
        reply = _read(state, args) if isinstance(args, ReadArgs) else state.preferences[args.person].model_dump()  # type: ignore[attr-defined]
        return state, json.dumps(reply, separators=(",", ":"))
    assert tool.apply is not None and isinstance(args, _Act)
    if args.at is not None:
        entry = ScheduledCall(at=args.at, name=name, arguments=args.model_dump(exclude={"at"}))
        return state.model_copy(update={"schedules": (*state.schedules, entry)}), '{"scheduled":true}'
    return tool.apply(state, args), '{"ok":true}'


def run_calls(state: HomeState, calls: list[tuple[str, dict[str, object]]]) -> HomeState:
    """Apply a list of calls (a task's reference solution); raises on any refusal."""
    for name, arguments in calls:
        state, _ = call_tool(state, name, arguments)
    return state
