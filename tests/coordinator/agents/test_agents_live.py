"""The agent systems on real processes: a torch device daemon and two cloud services (the device's
model, and the stronger weave-agent-cloud) behind a coordinator, every agent calling it through the
official ``openai`` client.

SAS, MAS, routing and the cascade run household tasks and leave typed records (the MAS run as a
networkx dependency graph); budgets end a run with an error naming the agent and the limit; a mobile
agent whose device is killed mid-task finishes on the cloud with its whole state, exactly as an
uninterrupted run (greedy decoding, the same model on both tiers)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator

import networkx as nx
import openai
import pytest

from cloud.agents import loop
from cloud.agents.chat import ModelChoice, OpenAIChatModel, TurnCache
from cloud.agents.policy import DifficultyRouter
from cloud.agents.runtime import Setup, run_cascade, run_mas, run_routed, run_sas
from cloud.agents.state import AgentState, Budget
from coordinator.agents.cascade import CascadeGate
from coordinator.agents.mobility import MobileAgentController
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.home.checker import check
from edgeweave.home.role_corpus import AGENT_SYSTEM
from edgeweave.home.tasks import Task, suite

DEVICE = LocalDevice("hub-1", "jetson", "torch", threads=1, max_queue=4, model="weave-agent-device")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("agents"), heartbeat_s=0.3) as c:
        c.start_clouds({"cloud-small": "weave-agent-device", "cloud": "weave-agent-cloud"})
        (device,) = c.start_devices((DEVICE,))
        c.start_coordinator(mdns=False, static=(device.url,))
        c.wait_until(lambda up: up == {DEVICE.id}, timeout_s=30)
        yield c


def setup(cluster: LocalCluster, **kw: object) -> Setup:
    api = openai.AsyncOpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0, timeout=60)
    return Setup(chat=OpenAIChatModel(api, cache=TurnCache()), **kw)  # type: ignore[arg-type]


def task(level: int, feature: str | None = None) -> Task:
    return next(t for t in suite("test", 6) if t.level == level and (feature is None or feature in t.features))


def test_sas_and_mas_leave_their_records(cluster: LocalCluster) -> None:
    t = task(3)
    sas = asyncio.run(run_sas(t.request, t.initial, setup(cluster), check=True))
    assert [a.role for a in sas.agents] == ["agent", "verifier"] and sas.verified is not None
    assert all(turn.endpoint.startswith(("device:", "cloud:")) for turn in sas.turns)
    assert sas.agents[0].turns[-1].message.tool_calls is None  # it ended with an answer
    mas = asyncio.run(run_mas(t.request, t.initial, setup(cluster)))
    g = mas.graph()
    executors = [a.name for a in mas.agents if a.role == "executor"]
    assert executors and nx.is_directed_acyclic_graph(g)
    assert set(g.successors("planner")) == set(executors)
    assert nx.has_path(g, "planner", "verifier") and g.in_degree("verifier") == 1
    assert mas.prefill_tokens > sas.prefill_tokens  # many agents read more than one does
    cloud = asyncio.run(run_mas(t.request, t.initial, setup(cluster), all_cloud=True))
    assert {turn.model for turn in cloud.turns} == {"weave-agent-cloud"}
    assert {turn.endpoint for turn in cloud.turns} == {"cloud:cloud"}


def test_routing_and_the_cascade(cluster: LocalCluster) -> None:
    easy, hard = task(1), task(8)
    router = DifficultyRouter().fit([easy.request, hard.request, task(2).request, task(7).request],
                                    [False, True, False, True])  # fmt: skip
    routed = asyncio.run(run_routed(hard.request, hard.initial, setup(cluster), router))
    assert routed.routed == "mas" and routed.runs[0].system == "mas"
    always = CascadeGate(min_confidence=1.0)  # no answer is that sure: always escalates
    run = asyncio.run(run_cascade(easy.request, easy.initial, setup(cluster), always))
    assert run.escalated and [r.system for r in run.runs] == ["sas", "mas"]
    never = CascadeGate(min_confidence=0.0)
    kept = asyncio.run(run_cascade(easy.request, easy.initial, setup(cluster), never))
    assert kept.escalated == (kept.runs[0].verified is False)


def test_budgets_end_a_run_with_a_clear_error(cluster: LocalCluster) -> None:
    t = task(3, "conditional")
    record = asyncio.run(run_sas(t.request, t.initial, setup(cluster, budget=Budget(max_steps=1))))
    assert record.error == "agent 'sas' exceeded its budget: max_steps=1 (used 1)"
    tight = asyncio.run(run_sas(t.request, t.initial, setup(cluster, budget=Budget(max_tokens=50))))
    assert tight.error is not None and "max_tokens=50" in tight.error


def test_a_mobile_agent_survives_its_device_being_killed(cluster: LocalCluster) -> None:
    t = task(4, "conditional")  # a read, its result, then the action: more than one step
    choice = ModelChoice(model="weave-agent-device", tier="device")
    reference = asyncio.run(
        loop.run(
            loop.start("sas", AGENT_SYSTEM, t.request, t.initial), setup(cluster).chat, loop.Fixed(choice), Budget()
        )
    )
    assert {turn.endpoint for turn in reference.turns} == {"device:hub-1"} and len(reference.turns) >= 2
    controller = MobileAgentController(choice)
    s = setup(cluster)

    async def mobile() -> AgentState:
        state = await loop.step(loop.start("sas", AGENT_SYSTEM, t.request, t.initial), s.chat, controller, Budget())
        assert state.turns[0].endpoint == "device:hub-1" and not controller.moved
        state = AgentState.model_validate_json(state.model_dump_json())  # the whole state is data
        pid = cluster.devices[DEVICE.id].proc.pid
        threading.Timer(0.05, os.kill, (pid, signal.SIGKILL)).start()  # mid-step: during its next answer
        return await loop.run(state, s.chat, controller, Budget())

    moved = asyncio.run(mobile())
    assert controller.moved and moved.turns[-1].endpoint == "cloud:cloud-small"
    assert moved.answer == reference.answer and moved.home == reference.home
    assert [
        m.model_dump(exclude={"tool_calls": {"__all__": {"id"}}, "tool_call_id": True}) for m in moved.messages
    ] == [m.model_dump(exclude={"tool_calls": {"__all__": {"id"}}, "tool_call_id": True}) for m in reference.messages]
    assert check(t.initial, moved.home, t.goal) == check(t.initial, reference.home, t.goal)
