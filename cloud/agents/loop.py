"""The tool-calling loop of one agent, one checkpointed step at a time (the single agent, and each executor).

A step asks the :class:`Placement` which model and tier to call, makes the call with the house's tools,
runs every call the answer made against the house (a refused call returns its error to the agent, as
a real API would), and returns the next :class:`~cloud.agents.state.AgentState`.  An answer without
calls ends the agent.  A placement is the decision side (pure: the coordinator's mobile-agent
controller, :mod:`coordinator.agents.mobility`, is one); a model failure is reported to it, so it can
move the loop to another tier and the step is retried there from the same checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Protocol

from cloud.agents.chat import AgentModelError, ChatModel, ModelChoice, Turn
from cloud.agents.state import AgentState, Budget
from edgeweave.home.state import HomeState
from edgeweave.home.tools import ToolError, call_tool
from edgeweave.wire.openai_api import ChatMessageIn

MAX_RETRIES = 2  # a failed call is retried on the placement's next choice this many times


class Placement(Protocol):
    def choose(self, state: AgentState) -> ModelChoice: ...

    def observe(self, state: AgentState, turn: Turn | None, failure: AgentModelError | None) -> None: ...


class Fixed:
    """Always the same model and tier."""

    def __init__(self, choice: ModelChoice) -> None:
        self.choice = choice

    def choose(self, state: AgentState) -> ModelChoice:
        return self.choice

    def observe(self, state: AgentState, turn: Turn | None, failure: AgentModelError | None) -> None:
        if failure is not None:
            raise failure


def start(agent: str, system: str, request: str, home: HomeState) -> AgentState:
    msgs = [ChatMessageIn(role="system", content=system), ChatMessageIn(role="user", content=request)]
    return AgentState(agent=agent, messages=msgs, home=home)


async def step(state: AgentState, model: ChatModel, placement: Placement, budget: Budget) -> AgentState:
    """One model turn and its tool calls: the next checkpoint."""
    state.check(budget)
    for attempt in range(MAX_RETRIES + 1):
        choice = placement.choose(state)
        try:
            turn = await model.complete(state.agent, choice, state.messages, budget.max_turn_tokens, tools=True)
        except AgentModelError as e:
            placement.observe(state, None, e)
            if attempt == MAX_RETRIES:
                raise
            continue
        break
    messages, home, errors = [*state.messages, turn.message], state.home, state.tool_errors
    for call in turn.message.tool_calls or []:
        try:
            home, reply = call_tool(home, call.function.name, call.function.arguments)
        except ToolError as e:
            reply, errors = json.dumps({"error": str(e)[:200]}), errors + 1
        messages.append(ChatMessageIn(role="tool", tool_call_id=call.id, content=reply))
    answer = None if turn.message.tool_calls else (turn.message.text or "")
    nxt = state.model_copy(
        update={
            "messages": messages,
            "home": home,
            "turns": [*state.turns, turn],
            "answer": answer,
            "tool_errors": errors,
        }
    )
    placement.observe(nxt, turn, None)
    return nxt


async def steps(state: AgentState, model: ChatModel, placement: Placement, budget: Budget) -> AsyncIterator[AgentState]:
    """Every checkpoint until the agent answers."""
    while not state.done:
        state = await step(state, model, placement, budget)
        yield state


async def run(state: AgentState, model: ChatModel, placement: Placement, budget: Budget) -> AgentState:
    while not state.done:
        state = await step(state, model, placement, budget)
    return state
