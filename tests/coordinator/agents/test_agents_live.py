"""The agent systems on real processes (the cluster of ``conftest.py``), every agent calling the
coordinator through the official ``openai`` client: SAS, MAS, routing and the cascade run household
tasks and leave typed records (the MAS run as a networkx dependency graph).  Budgets, placement,
tracing and routing are tested on a scripted model in ``tests/cloud/agents``."""

from __future__ import annotations

import asyncio

import networkx as nx
import openai
import pytest

from cloud.agents.chat import OpenAIChatModel, TurnCache
from cloud.agents.policy import DifficultyRouter
from cloud.agents.runtime import Setup, run_cascade, run_mas, run_routed, run_sas
from coordinator.agents.cascade import CascadeGate
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.home.tasks import Task, suite


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


@pytest.mark.slow  # two multi-agent runs; the gate and the router are tested on a scripted model in make test
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
