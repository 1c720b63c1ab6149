"""The mobile agent's controller: where each step of an agent's loop runs, device first, cloud when needed.

An agent starts on the device tier (its model on a phone, a Pi, a Jetson, placed by the
coordinator).  The loop moves to the cloud, with its whole state (the messages, every tool result,
the house: :class:`~cloud.agents.state.AgentState`, which every step carries), and stays there for
the rest of the task when

- the device failed the step (an error from the coordinator: the device left, nothing else serves it),
- the coordinator already moved the step's answer to the cloud mid-stream (its device died or was
  overloaded: DiSCo's token-level migration; the answer says where it finished),
- the device's answer was too uncertain (its mean token probability under ``min_confidence``), or
- the device tier is overloaded (``load()``, the busiest device's queue over its capacity, at or
  above ``max_load``; the caller supplies the observation, the controller reads no sockets).

Pure and synchronous: it keeps the moves it made, with their reasons, for the run's report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cloud.agents.chat import AgentModelError, ModelChoice, Turn
from cloud.agents.state import AgentState


@dataclass(frozen=True)
class Move:
    agent: str
    after_step: int  # steps done on the device before the move
    reason: str


@dataclass
class MobileAgentController:
    device: ModelChoice
    min_confidence: float = 0.5
    max_load: float = 1.0
    load: Callable[[], float] = lambda: 0.0
    moves: list[Move] = field(default_factory=list)

    @property
    def cloud(self) -> ModelChoice:
        """The same model on the cloud tier: the loop continues where it was, on a bigger machine."""
        return ModelChoice(model=self.device.model, tier="cloud")

    @property
    def moved(self) -> bool:
        return bool(self.moves)

    def choose(self, state: AgentState) -> ModelChoice:
        if not self.moved and self.load() >= self.max_load:
            self._move(state, f"device tier overloaded (load {self.load():.2f})")
        return self.cloud if self.moved else self.device

    def observe(self, state: AgentState, turn: Turn | None, failure: AgentModelError | None) -> None:
        if self.moved:
            return
        if failure is not None:
            self._move(state, f"device failed: {failure}")
        elif turn is not None and turn.endpoint.startswith("cloud:"):
            self._move(state, f"the coordinator moved the answer to {turn.endpoint}")
        elif turn is not None and turn.confidence < self.min_confidence:
            self._move(state, f"uncertain answer (confidence {turn.confidence:.2f})")

    def _move(self, state: AgentState, reason: str) -> None:
        self.moves.append(Move(agent=state.agent, after_step=len(state.turns), reason=reason))
