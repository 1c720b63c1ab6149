"""An agent's whole state, as data: what it has said, what its tools returned, the house, and its budget.

A :class:`AgentState` is a checkpoint: after every step (one model turn and the tool calls it made)
the loop (:mod:`cloud.agents.loop`) returns a new one, so a run can stop on one tier and go on on
another from exactly there (the mobile agent), and a report can show every step.  :class:`Budget`
bounds a run; running past it raises :class:`BudgetExceeded`, naming the agent and the limit.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cloud.agents.chat import Turn
from edgeweave.errors import EdgeweaveError
from edgeweave.home.state import HomeState
from edgeweave.wire.openai_api import ChatMessageIn


class Budget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_steps: int = Field(default=6, ge=1, le=64)  # model turns of one agent
    max_tokens: int = Field(default=6000, ge=1)  # prompt + completion tokens of one agent
    max_turn_tokens: int = Field(default=512, ge=1, le=4096)  # completion tokens of one turn


class BudgetExceeded(EdgeweaveError):
    def __init__(self, agent: str, limit: str, value: int, used: int) -> None:
        super().__init__(f"agent {agent!r} exceeded its budget: {limit}={value} (used {used})")
        self.agent, self.limit = agent, limit


class AgentState(BaseModel):
    agent: str  # its name in the run ("sas", "executor-2", ...)
    messages: list[ChatMessageIn]
    home: HomeState
    turns: list[Turn] = Field(default_factory=list)
    answer: str | None = None  # set when the agent has finished (its last plain-text turn)
    tool_errors: int = 0  # calls the house refused (bad arguments, no such device)

    @property
    def done(self) -> bool:
        return self.answer is not None

    @property
    def tokens(self) -> int:
        return sum(t.prompt_tokens + t.completion_tokens for t in self.turns if not t.cached)

    def check(self, budget: Budget) -> None:
        if len(self.turns) >= budget.max_steps:
            raise BudgetExceeded(self.agent, "max_steps", budget.max_steps, len(self.turns))
        if self.tokens >= budget.max_tokens:
            raise BudgetExceeded(self.agent, "max_tokens", budget.max_tokens, self.tokens)
