"""The demo's agents: one household request, from plan to tool calls to the house's changes.

The cascade (:mod:`cloud.agents.runtime`) answers it on the demo cluster: the single agent first,
its loop placed on the device tier by the coordinator's mobile-agent controller (it moves to the
cloud if the device fails, is overloaded or answers too uncertainly); when the coordinator's gate
escalates, the multi-agent system (planner, executors, verifier).  Printed: every agent, the model
and endpoint that ran each of its turns, its tool calls, its confidence and cost, then the house's
changes and the exact checker's verdict against the goal.
"""

from __future__ import annotations

import random

from openai import AsyncOpenAI
from rich import box
from rich.console import Console
from rich.table import Table

from cloud.agents import loop
from cloud.agents.chat import ModelChoice, OpenAIChatModel, TurnCache
from cloud.agents.runtime import Setup, SystemRun, run_cascade
from coordinator.agents.cascade import CascadeGate
from coordinator.agents.mobility import MobileAgentController
from edgeweave.home.checker import check, describe_changes
from edgeweave.home.state import HomeState, random_home
from edgeweave.home.tools import run_calls

REQUEST = "get the house ready for movie night and if the garage door is open, close it"
# what the request means, as calls (the demo's goal for the checker)
REFERENCE: list[tuple[str, dict[str, object]]] = [
    ("scene_activate", {"name": "movie night"}),
    ("door_close", {"door": "garage"}),
]


def demo_home() -> HomeState:
    """A house with the garage door left open."""
    home = random_home(random.Random(3))
    doors = dict(home.doors)
    doors["garage"] = doors["garage"].model_copy(update={"open": True})
    return home.model_copy(update={"doors": doors})


def placement(choice: ModelChoice) -> loop.Placement:
    return MobileAgentController(choice) if choice.tier == "device" else loop.Fixed(choice)


def agents_table(run: SystemRun) -> Table:
    t = Table(title=f"{run.system}: who ran where", box=box.SIMPLE_HEAD)
    for col in ("run", "agent", "model @ endpoint", "tool calls / answer", "conf.", "tokens", "µUSD"):
        t.add_column(col, overflow="fold")
    for record in run.runs:
        for agent in record.agents:
            for turn in agent.turns:
                calls = [f"{c.function.name}({c.function.arguments})" for c in turn.message.tool_calls or []]
                t.add_row(
                    record.system,
                    agent.name,
                    f"{turn.model} @ {turn.endpoint}",
                    "\n".join(calls) or (turn.message.text or ""),
                    f"{turn.confidence:.2f}",
                    str(turn.prompt_tokens + turn.completion_tokens),
                    f"{(turn.cost_usd or 0.0) * 1e6:.2f}",
                )
    return t


async def run_household(client: AsyncOpenAI, console: Console, request: str = REQUEST) -> SystemRun:
    home = demo_home()
    goal = run_calls(home, REFERENCE)
    setup = Setup(chat=OpenAIChatModel(client).with_cache(TurnCache()), placement=placement)
    console.print(f'\n[bold]agents[/]: "{request}" (the cascade: one agent first, the multi-agent system if needed)')
    run = await run_cascade(request, home, setup, CascadeGate())
    console.print(agents_table(run))
    last = run.runs[-1]
    if run.escalated:
        console.print(f"the gate escalated: the single agent's verifier said {run.runs[0].verified}")
    if last.system.startswith("mas"):
        console.print(f"plan: {last.agents[0].turns[0].message.text}")
    console.print("house changes:\n  " + describe_changes(home, run.final).replace("\n", "\n  "))
    verdict = check(home, run.final, goal)
    console.print(f"checker: {verdict.summary()}; cost {run.cost_usd * 1e6:.2f} µUSD over {len(run.runs)} run(s)")
    return run
