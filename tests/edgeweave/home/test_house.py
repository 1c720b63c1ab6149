"""The simulated house: tools change exactly what they say, refuse bad calls without changing anything,
file schedules, run scenes; the checker tells wrong from forbidden; every generated task's reference
solution passes the checker, on every split (the hidden one included: checked, never tuned on)."""

from __future__ import annotations

import random

import pytest

from edgeweave.home.checker import check, describe_changes, diff
from edgeweave.home.state import random_home
from edgeweave.home.tasks import MAX_LEVEL, make_task, split_of, suite
from edgeweave.home.tools import TOOLS, ToolError, call_tool, devices_of, tool_definitions


@pytest.fixture
def home():  # type: ignore[no-untyped-def]
    return random_home(random.Random(7))


def test_an_act_changes_only_its_device(home) -> None:  # type: ignore[no-untyped-def]
    after, reply = call_tool(home, "lights_dim", '{"room": "kitchen", "level": 30}')
    assert reply == '{"ok":true}'
    assert diff(home, after).keys() <= {"lights.kitchen.level", "lights.kitchen.on"}
    assert after.lights["kitchen"].level == 30 and after.lights["kitchen"].on


@pytest.mark.parametrize(
    ("name", "arguments", "match"),
    [
        ("lights_dim", {"room": "attic", "level": 30}, "room"),
        ("lights_dim", {"room": "kitchen", "level": 130}, "level"),
        ("thermostat_set", {"room": "kitchen", "celsius": 20}, "room"),  # the kitchen has no thermostat
        ("lights_on", {"room": "kitchen", "colour": "red"}, "colour"),
        ("lights_on", {"room": "kitchen", "at": "25:00"}, "at"),
        ("lights_on", "{not json", "not JSON"),
        ("open_windows", {}, "unknown tool"),
        ("home_read", {"kind": "door", "place": "attic"}, "attic"),
    ],
)
def test_bad_calls_are_refused_and_change_nothing(home, name, arguments, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ToolError, match=match):
        call_tool(home, name, arguments)


def test_reads_schedules_scenes_and_questions(home) -> None:  # type: ignore[no-untyped-def]
    _, reply = call_tool(home, "home_read", {"kind": "door", "place": "garage"})
    assert reply == home.doors["garage"].model_dump_json()
    later, reply = call_tool(home, "lights_off", {"room": "bedroom", "at": "22:30"})
    assert reply == '{"scheduled":true}' and later.lights == home.lights
    assert "schedule 22:30 lights_off" in describe_changes(home, later)
    night, _ = call_tool(home, "scene_activate", {"name": "movie night"})
    assert night.lights["living room"].level == 20 and night.blinds["living room"].position == 0
    asked, _ = call_tool(home, "ask_user", {"question": "Which room?"})
    assert asked.flat()["asked"] and not home.flat()["asked"]


def test_every_tool_offers_a_json_schema_of_its_arguments() -> None:
    defs = {d.function.name: d.function.parameters for d in tool_definitions()}
    assert defs.keys() == TOOLS.keys()
    assert defs["lights_dim"]["required"] == ["room", "level"]
    assert "kitchen" in defs["lights_dim"]["properties"]["room"]["enum"]


def test_the_checker_tells_wrong_from_forbidden(home) -> None:  # type: ignore[no-untyped-def]
    goal, _ = call_tool(home, "door_lock", {"door": "front"})
    goal, _ = call_tool(goal, "lights_dim", {"room": "office", "level": 55})  # homes start at tens
    partial, _ = call_tool(home, "door_lock", {"door": "front"})
    broke, _ = call_tool(goal, "lights_color", {"room": "garage", "color": "red"})  # homes start white
    assert check(home, goal, goal).passed
    missing = check(home, partial, goal)
    assert not missing.passed and "lights.office.level" in missing.wrong and not missing.forbidden
    extra = check(home, broke, goal)
    assert not extra.passed and extra.forbidden and all(k.startswith("lights.garage.") for k in extra.forbidden)


@pytest.mark.parametrize("split", ["train", "test", "hidden"])
def test_every_reference_solution_passes_the_checker(split: str) -> None:
    tasks = suite(split, per_level=4, seed=3)  # type: ignore[arg-type]
    assert sorted({t.level for t in tasks}) == list(range(1, MAX_LEVEL + 1))
    for t in tasks:
        assert t.split == split == split_of(t.request)
        assert len(t.calls) == t.level
        final = t.initial
        for c in t.calls:
            final, _ = call_tool(final, c.name, dict(c.arguments))
        assert check(t.initial, final, t.goal).passed
        touched = [d for s in t.steps for d in s.devices]
        assert len(touched) == len(set(touched))  # no two clauses touch one device: order does not matter


def test_the_suite_has_every_kind_of_task() -> None:
    features = {f for t in suite("test", per_level=12) for f in t.features}
    assert features == {"conditional", "schedule", "scene", "preference", "ambiguous", "cross-room"}
    ambiguous = [t for t in suite("test", per_level=12) if "ambiguous" in t.features]
    assert ambiguous and all(t.goal.flat()["asked"] for t in ambiguous)
    alone = [t for t in ambiguous if t.level == 1]
    assert all(diff(t.initial, t.goal).keys() == {"asked"} for t in alone)


def test_tasks_are_deterministic() -> None:
    assert make_task(11, 5) == make_task(11, 5)
    assert devices_of("scene_activate", {"name": "away"}) >= {"doors.front", "doors.garage"}
