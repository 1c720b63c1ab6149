"""What a run of one system leaves: each agent as a node (its role, model, tier, turns, confidence), the
messages between agents as edges, the house before and after.  :meth:`RunRecord.graph` is the paper's
dependency graph (networkx), which confidence-guided tracing (:mod:`cloud.agents.policy`) walks.
"""

from __future__ import annotations

from typing import Literal

import networkx as nx
from pydantic import BaseModel, Field

from cloud.agents.chat import Tier, Turn
from edgeweave.home.state import HomeState
from edgeweave.home.tools import devices_of

Role = Literal["agent", "planner", "executor", "verifier"]


class AgentNode(BaseModel):
    name: str
    role: Role
    turns: list[Turn] = Field(default_factory=list)
    task: str = ""  # what it was asked (the request, or its step of the plan)
    upgraded: bool = False  # run on the stronger model by the tracer's choice

    @property
    def confidence(self) -> float:
        """The least confident of its turns (1.0 before any)."""
        return min((t.confidence for t in self.turns), default=1.0)

    @property
    def tiers(self) -> list[Tier]:
        return [t.tier for t in self.turns]

    @property
    def devices(self) -> set[str]:
        """The house's devices its tool calls addressed (``lights.kitchen``)."""
        out: set[str] = set()
        for t in self.turns:
            for c in t.message.tool_calls or []:
                try:
                    out |= devices_of(c.function.name, c.function.parsed())
                except ValueError:  # arguments that are not a JSON object: the house refused the call
                    continue
        return out


class Edge(BaseModel):
    source: str
    target: str
    label: str  # what was passed ("plan step 2", "changes")


class RunRecord(BaseModel):
    system: str
    request: str
    initial: HomeState
    final: HomeState
    agents: list[AgentNode] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    verified: bool | None = None  # the verifier's verdict, where the system ran one
    error: str | None = None  # a budget or model failure that ended the run early

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        for a in self.agents:
            g.add_node(a.name, role=a.role, confidence=a.confidence, tiers=a.tiers)
        for e in self.edges:
            g.add_edge(e.source, e.target, label=e.label)
        return g

    def agent(self, name: str) -> AgentNode:
        return next(a for a in self.agents if a.name == name)

    @property
    def turns(self) -> list[Turn]:
        return [t for a in self.agents for t in a.turns]

    @property
    def prefill_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.turns if not t.cached)

    @property
    def decode_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.turns if not t.cached)

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.turns if not t.cached)
