"""The agent systems on the house: the single agent, the multi-agent system, and their hybrids.

- **SAS**: one agent with every tool in the tool-calling loop (:mod:`cloud.agents.loop`), optionally
  checked by the verifier (the cascade needs its verdict).
- **MAS**: the planner splits the request into steps (``response_format``: a JSON schema, enforced by
  constrained decoding), one executor per step runs the loop on it against the house as the previous
  executors left it, and the verifier judges the request against the house's changes.  The run is a
  dependency graph: planner -> each executor (its step) -> the next executor (the house) -> verifier.
- **routing**: the difficulty router (:mod:`cloud.agents.policy`) picks SAS or MAS per request.
- **cascade**: SAS first; the gate (a coordinator controller, :mod:`coordinator.agents.cascade`)
  sends it on to MAS, which starts again from the house as it was.
- **cascade + upgrade**: when MAS's verifier rejects, tracing names the least confident agent on the
  critical path and MAS runs again with only that agent on the stronger model (the turns before it
  are the same calls and come from the run's turn cache).

Every agent's model is a :class:`~cloud.agents.chat.ModelChoice` (a model name and a tier); which
tier, step by step, is a :class:`~cloud.agents.loop.Placement`'s choice (the mobile agent).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cloud.agents import loop
from cloud.agents.chat import AgentModelError, ChatModel, ModelChoice, Turn
from cloud.agents.policy import DifficultyRouter, trace
from cloud.agents.record import AgentNode, Edge, RunRecord
from cloud.agents.state import AgentState, Budget, BudgetExceeded
from edgeweave.generation.tools import JsonSchemaFormat, ResponseFormat
from edgeweave.home.role_corpus import AGENT_SYSTEM, PLANNER_SYSTEM, VERIFIER_SYSTEM, verifier_prompt
from edgeweave.home.state import HomeState
from edgeweave.wire.openai_api import ChatMessageIn

PLAN_FORMAT = ResponseFormat(
    type="json_schema",
    json_schema=JsonSchemaFormat(
        name="plan",
        schema={
            "type": "object",
            "properties": {
                "steps": {"type": "array", "items": {"type": "string", "maxLength": 160}, "minItems": 1, "maxItems": 12}
            },
            "required": ["steps"],
            "additionalProperties": False,
        },
    ),
)
VERDICT_FORMAT = ResponseFormat(
    type="json_schema",
    json_schema=JsonSchemaFormat(
        name="verdict",
        schema={
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        },
    ),
)


class Gate(Protocol):
    def escalate(self, record: RunRecord) -> bool: ...


@dataclass(frozen=True)
class Models:
    """The two models every agent picks between: the one its device runs, and the stronger cloud one."""

    device: ModelChoice = ModelChoice(model="weave-agent-device", tier="device")
    cloud: ModelChoice = ModelChoice(model="weave-agent-cloud", tier="cloud")


@dataclass
class Setup:
    """What a run needs besides the request: the model endpoint, the models, budgets, and how each
    agent's steps are placed (default: all on its model's own tier)."""

    chat: ChatModel
    models: Models = field(default_factory=Models)
    budget: Budget = field(default_factory=Budget)
    placement: Callable[[ModelChoice], loop.Placement] = loop.Fixed


async def _single(agent: str, system: str, prompt: str, choice: ModelChoice, setup: Setup, fmt: ResponseFormat) -> Turn:
    messages = [ChatMessageIn(role="system", content=system), ChatMessageIn(role="user", content=prompt)]
    return await setup.chat.complete(agent, choice, messages, setup.budget.max_turn_tokens, response_format=fmt)


async def _agent(
    name: str, role: str, task: str, home: HomeState, choice: ModelChoice, setup: Setup
) -> tuple[AgentState, AgentNode]:
    state = await loop.run(
        loop.start(name, AGENT_SYSTEM, task, home), setup.chat, setup.placement(choice), setup.budget
    )
    return state, AgentNode(name=name, role=role, task=task, turns=state.turns)  # type: ignore[arg-type]


async def verify(record: RunRecord, choice: ModelChoice, setup: Setup) -> RunRecord:
    """``record`` with the verifier's verdict on the house's changes (and the verifier in the graph)."""
    prompt = verifier_prompt(record.request, record.initial, record.final)
    turn = await _single("verifier", VERIFIER_SYSTEM, prompt, choice, setup, VERDICT_FORMAT)
    try:
        ok = bool(json.loads(turn.message.text)["ok"])
    except (json.JSONDecodeError, KeyError, TypeError):
        ok = False  # an unconstrained endpoint's malformed verdict counts as a rejection
    workers = [a.name for a in record.agents]
    edges = [Edge(source=workers[-1], target="verifier", label="changes")] if workers else []
    node = AgentNode(name="verifier", role="verifier", task=prompt, turns=[turn])
    return record.model_copy(
        update={"agents": [*record.agents, node], "edges": [*record.edges, *edges], "verified": ok}
    )


async def run_sas(request: str, home: HomeState, setup: Setup, check: bool = False, cloud: bool = False) -> RunRecord:
    choice = setup.models.cloud if cloud else setup.models.device
    record = RunRecord(system="sas", request=request, initial=home, final=home)
    try:
        state, node = await _agent("sas", "agent", request, home, choice, setup)
    except (BudgetExceeded, AgentModelError) as e:
        return record.model_copy(update={"error": str(e)})
    record = record.model_copy(update={"final": state.home, "agents": [node]})
    return await verify(record, choice, setup) if check else record


async def run_mas(
    request: str, home: HomeState, setup: Setup, upgrades: frozenset[str] = frozenset(), all_cloud: bool = False
) -> RunRecord:
    """The planner, an executor per step, the verifier; the agents named in ``upgrades`` (and all of
    them with ``all_cloud``) on the stronger model."""
    m = setup.models

    def choice(name: str) -> ModelChoice:
        return m.cloud if all_cloud or name in upgrades else m.device

    record = RunRecord(system="mas-cloud" if all_cloud else "mas", request=request, initial=home, final=home)
    turn = await _single("planner", PLANNER_SYSTEM, request, choice("planner"), setup, PLAN_FORMAT)
    planner = AgentNode(name="planner", role="planner", task=request, turns=[turn], upgraded="planner" in upgrades)
    try:
        steps = [str(s) for s in json.loads(turn.message.text)["steps"]]
    except (json.JSONDecodeError, KeyError, TypeError):
        return record.model_copy(update={"agents": [planner], "error": "planner: the plan is not a JSON object"})
    nodes, edges, state_home = [planner], [], home
    error = None
    for i, step in enumerate(steps, start=1):
        name = f"executor-{i}"
        edges.append(Edge(source="planner", target=name, label=f"step {i}"))
        if i > 1:
            edges.append(Edge(source=f"executor-{i - 1}", target=name, label="house"))
        try:
            state, node = await _agent(name, "executor", step, state_home, choice(name), setup)
        except (BudgetExceeded, AgentModelError) as e:
            error = str(e)
            break
        node.upgraded = name in upgrades
        nodes.append(node)
        state_home = state.home
    record = record.model_copy(update={"final": state_home, "agents": nodes, "edges": edges, "error": error})
    if error is not None:
        return record
    return await verify(record, choice("verifier"), setup)


@dataclass
class SystemRun:
    """One system's answer to one request: the runs it made (a cascade makes more than one), the
    house at the end, and what it decided on the way."""

    system: str
    runs: list[RunRecord]
    escalated: bool = False
    routed: str | None = None
    upgraded: str | None = None

    @property
    def final(self) -> HomeState:
        return self.runs[-1].final

    @property
    def cost_usd(self) -> float:
        """What its endpoints reported spending (turns answered from the cache cost nothing again)."""
        return sum(t.cost_usd or 0.0 for r in self.runs for t in r.turns if not t.cached)


async def run_cascade(request: str, home: HomeState, setup: Setup, gate: Gate, upgrade: bool = False) -> SystemRun:
    name = "cascade+upgrade" if upgrade else "cascade"
    sas = await run_sas(request, home, setup, check=True)
    if not gate.escalate(sas):
        return SystemRun(name, [sas])
    mas = await run_mas(request, home, setup)
    if not upgrade or mas.verified is not False:
        return SystemRun(name, [sas, mas], escalated=True)
    culprit = trace(mas, None)
    again = await run_mas(request, home, setup, upgrades=frozenset({culprit}))
    return SystemRun(name, [sas, mas, again], escalated=True, upgraded=culprit)


async def run_routed(request: str, home: HomeState, setup: Setup, router: DifficultyRouter) -> SystemRun:
    route = router.route(request)
    record = await (run_mas(request, home, setup) if route == "mas" else run_sas(request, home, setup))
    return SystemRun("routing", [record], routed=route)
