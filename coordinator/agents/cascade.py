"""The cascade's gate (arXiv 2505.18286's request cascading): when a single agent's run goes on to the
multi-agent system.  Escalate when the run's verifier rejects it, when it ended in error (a budget,
a model failure), or when its least confident turn (mean token probability) is under a threshold:
the live signals; the exact checker needs the goal, which a live request does not have.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cloud.agents.record import RunRecord


class CascadeGate(BaseModel):
    model_config = ConfigDict(frozen=True)
    min_confidence: float = Field(default=0.75, ge=0.0, le=1.0)

    def escalate(self, record: RunRecord) -> bool:
        if record.error is not None or record.verified is False:
            return True
        workers = [a.confidence for a in record.agents if a.role != "verifier"]
        return min(workers, default=1.0) < self.min_confidence
