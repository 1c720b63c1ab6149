"""A mobile agent whose device is killed mid-task finishes on the cloud with its whole state, exactly
as an uninterrupted run (greedy decoding, the same model on both tiers).  Last in the package: the
cluster's device does not come back."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import openai

from cloud.agents import loop
from cloud.agents.chat import ModelChoice, OpenAIChatModel, TurnCache
from cloud.agents.state import AgentState, Budget
from coordinator.agents.mobility import MobileAgentController
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.home.checker import check
from edgeweave.home.role_corpus import AGENT_SYSTEM
from edgeweave.home.tasks import Task, suite
from tests.coordinator.agents.conftest import DEVICE


def chat(cluster: LocalCluster) -> OpenAIChatModel:
    api = openai.AsyncOpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0, timeout=60)
    return OpenAIChatModel(api, cache=TurnCache())


def conditionals() -> list[Task]:
    """Tasks whose agent reads first and acts on what it read: more than one step."""
    return [t for t in suite("test", 6) if "conditional" in t.features and 2 <= t.level <= 4]


def test_a_mobile_agent_survives_its_device_being_killed(cluster: LocalCluster) -> None:
    choice = ModelChoice(model="weave-agent-device", tier="device")
    for t in conditionals():  # the first whose uninterrupted run takes more than one step
        reference = asyncio.run(
            loop.run(loop.start("sas", AGENT_SYSTEM, t.request, t.initial), chat(cluster), loop.Fixed(choice), Budget())
        )
        if len(reference.turns) >= 2:
            break
    assert {turn.endpoint for turn in reference.turns} == {"device:hub-1"} and len(reference.turns) >= 2
    controller = MobileAgentController(choice, min_confidence=0.0)  # only the kill may move it
    model = chat(cluster)

    async def mobile() -> AgentState:
        state = await loop.step(loop.start("sas", AGENT_SYSTEM, t.request, t.initial), model, controller, Budget())
        assert state.turns[0].endpoint == "device:hub-1" and not controller.moved
        state = AgentState.model_validate_json(state.model_dump_json())  # the whole state is data
        pid = cluster.devices[DEVICE.id].proc.pid
        threading.Timer(0.05, os.kill, (pid, signal.SIGKILL)).start()  # mid-step: during its next answer
        return await loop.run(state, model, controller, Budget())

    moved = asyncio.run(mobile())
    assert controller.moved and moved.turns[-1].endpoint == "cloud:cloud-small"
    assert moved.answer == reference.answer and moved.home == reference.home
    assert [
        m.model_dump(exclude={"tool_calls": {"__all__": {"id"}}, "tool_call_id": True}) for m in moved.messages
    ] == [m.model_dump(exclude={"tool_calls": {"__all__": {"id"}}, "tool_call_id": True}) for m in reference.messages]
    assert check(t.initial, moved.home, t.goal) == check(t.initial, reference.home, t.goal)
