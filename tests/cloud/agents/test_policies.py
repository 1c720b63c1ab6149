"""The agent runtime's pure parts against a scripted model (the model is the dependency; the loop,
budgets, placement, tracing, routing and the gate are what is tested): budgets end a run with an
error naming the agent and the limit; a refused call goes back to the agent as its error; a device
failure moves the mobile agent to the cloud and the step is retried there; tracing names the least
confident agent on the critical path; the router learns which requests a single agent fails."""

from __future__ import annotations

import asyncio
import json
import math
import random

import pytest

from cloud.agents import loop
from cloud.agents.chat import AgentModelError, ModelChoice, Turn
from cloud.agents.policy import DifficultyRouter, critical_path, trace, wrong_devices
from cloud.agents.record import AgentNode, Edge, RunRecord
from cloud.agents.state import Budget, BudgetExceeded
from coordinator.agents.cascade import CascadeGate
from coordinator.agents.mobility import MobileAgentController
from edgeweave.generation.tools import FunctionCall, ToolCall
from edgeweave.home.state import random_home
from edgeweave.home.tasks import suite
from edgeweave.wire.openai_api import ChatMessageIn

DEVICE = ModelChoice(model="weave-agent-device", tier="device")
HOME = random_home(random.Random(1))


def turn(agent: str, calls: list[tuple[str, dict[str, object]]] | None = None, text: str = "",
         conf: float = 0.99, endpoint: str = "device:pi-1") -> Turn:  # fmt: skip
    tool_calls = [ToolCall(id=f"c{i}", function=FunctionCall(name=n, arguments=json.dumps(a)))
                  for i, (n, a) in enumerate(calls or [])]  # fmt: skip
    msg = ChatMessageIn(role="assistant", content=text or None, tool_calls=tool_calls or None)
    lp = [math.log(conf)] * 4
    return Turn(agent=agent, model="m", tier="device", endpoint=endpoint, message=msg, prompt_tokens=40,
                completion_tokens=4, logprobs=lp)  # fmt: skip


class Scripted:
    """Answers from a script of turns (or raises what the script holds), recording what it was asked."""

    def __init__(self, script: list[Turn | Exception]) -> None:
        self.script = script
        self.asked: list[tuple[ModelChoice, int]] = []

    async def complete(self, agent, choice, messages, max_tokens, tools=False, response_format=None):  # type: ignore[no-untyped-def]
        self.asked.append((choice, len(messages)))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item.model_copy(update={"agent": agent, "tier": choice.tier})


def run(model: Scripted, placement: loop.Placement, budget: Budget) -> loop.AgentState:  # type: ignore[name-defined]
    return asyncio.run(loop.run(loop.start("sas", "role: agent", "turn on the kitchen lights", HOME), model,
                                placement, budget))  # fmt: skip


def test_budgets_end_a_run_naming_the_agent_and_the_limit() -> None:
    forever = Scripted([turn("sas", [("lights_on", {"room": "kitchen"})]) for _ in range(10)])
    with pytest.raises(BudgetExceeded, match=r"^agent 'sas' exceeded its budget: max_steps=3 \(used 3\)$"):
        run(forever, loop.Fixed(DEVICE), Budget(max_steps=3))
    with pytest.raises(BudgetExceeded, match=r"max_tokens=100 \(used 132\)"):
        run(Scripted([turn("sas", [("lights_on", {"room": "kitchen"})]) for _ in range(10)]), loop.Fixed(DEVICE),
            Budget(max_tokens=100))  # fmt: skip


def test_a_refused_call_goes_back_to_the_agent() -> None:
    model = Scripted([turn("sas", [("lights_on", {"room": "attic"})]), turn("sas", text="Done.")])
    state = run(model, loop.Fixed(DEVICE), Budget())
    assert state.answer == "Done." and state.tool_errors == 1 and state.home == HOME
    reply = json.loads(state.messages[3].content)  # type: ignore[arg-type]
    assert state.messages[3].role == "tool" and reply["error"].startswith("lights_on: bad arguments: room: Input")


def test_a_device_failure_moves_the_loop_to_the_cloud_for_good() -> None:
    model = Scripted([
        turn("sas", [("lights_on", {"room": "kitchen"})]),
        AgentModelError("device:pi-1 went away"),
        turn("sas", text="Done.", endpoint="cloud:gpu"),
    ])  # fmt: skip
    controller = MobileAgentController(DEVICE)
    state = run(model, controller, Budget())
    assert [c.tier for c, _ in model.asked] == ["device", "device", "cloud"]
    assert model.asked[1][1] == model.asked[2][1]  # the retry on the cloud sends the same whole state
    assert state.answer == "Done." and state.home.lights["kitchen"].on
    assert [(m.after_step, m.reason.split(":")[0]) for m in controller.moves] == [(1, "device failed")]


@pytest.mark.parametrize(
    ("observed", "reason"),
    [({"conf": 0.3}, "uncertain answer"), ({"endpoint": "cloud:gpu"}, "the coordinator moved the answer")],
)
def test_uncertainty_or_a_move_by_the_coordinator_moves_the_loop(observed: dict, reason: str) -> None:  # type: ignore[type-arg]
    model = Scripted([turn("sas", [("lights_on", {"room": "kitchen"})], **observed), turn("sas", text="Done.")])
    controller = MobileAgentController(DEVICE)
    run(model, controller, Budget())
    assert [c.tier for c, _ in model.asked] == ["device", "cloud"] and controller.moves[0].reason.startswith(reason)


def test_an_overloaded_device_tier_sends_the_loop_to_the_cloud() -> None:
    model = Scripted([turn("sas", text="Done.")])
    run(model, MobileAgentController(DEVICE, load=lambda: 1.5), Budget())
    assert model.asked[0][0].tier == "cloud"


def mas(conf: dict[str, float]) -> RunRecord:
    agents = [
        AgentNode(name="planner", role="planner", turns=[turn("planner", text="{}", conf=conf["planner"])]),
        AgentNode(name="executor-1", role="executor",
                  turns=[turn("e1", [("lights_on", {"room": "kitchen"})], conf=conf["executor-1"])]),
        AgentNode(name="executor-2", role="executor",
                  turns=[turn("e2", [("door_lock", {"door": "front"})], conf=conf["executor-2"])]),
        AgentNode(name="verifier", role="verifier", turns=[turn("v", text='{"ok":false}', conf=0.1)]),
    ]  # fmt: skip
    edges = [Edge(source="planner", target="executor-1", label="step 1"),
             Edge(source="planner", target="executor-2", label="step 2"),
             Edge(source="executor-1", target="executor-2", label="house"),
             Edge(source="executor-2", target="verifier", label="changes")]  # fmt: skip
    return RunRecord(system="mas", request="r", initial=HOME, final=HOME, agents=agents, edges=edges)


def test_tracing_walks_the_critical_path_to_the_least_confident_agent() -> None:
    record = mas({"planner": 0.9, "executor-1": 0.4, "executor-2": 0.6})
    kitchen = wrong_devices(["lights.kitchen.on"])
    assert kitchen == {"lights.kitchen"}
    assert critical_path(record, kitchen) == ["planner", "executor-1"]
    assert trace(record, kitchen) == "executor-1"
    assert critical_path(record, {"doors.front"}) == ["planner", "executor-1", "executor-2"]
    assert trace(mas({"planner": 0.9, "executor-1": 0.95, "executor-2": 0.6}), {"doors.front"}) == "executor-2"
    assert critical_path(record, {"fans.garage"}) == ["planner"]  # nobody touched it: a step was never planned
    assert trace(record, None) == "executor-1"  # the verifier's rejection alone: any worker, least confident


def test_the_gate() -> None:
    record = mas({"planner": 0.9, "executor-1": 0.9, "executor-2": 0.9})
    assert CascadeGate().escalate(record.model_copy(update={"verified": False}))
    assert not CascadeGate().escalate(record.model_copy(update={"verified": True}))
    assert CascadeGate(min_confidence=0.95).escalate(record.model_copy(update={"verified": True}))
    assert CascadeGate().escalate(record.model_copy(update={"verified": True, "error": "budget"}))


def test_the_router_learns_which_requests_are_hard() -> None:
    tasks = suite("train", 6)
    router = DifficultyRouter().fit([t.request for t in tasks], [t.level > 4 for t in tasks])
    held = suite("test", 3)
    right = sum((router.route(t.request) == "mas") == (t.level > 4) for t in held)
    assert right / len(held) >= 0.75  # length and clause counts carry the level; chance is 0.5
    assert DifficultyRouter().fit(["a", "b"], [True, True]).route("c") == "mas"
