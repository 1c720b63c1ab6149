"""The pure decisions of the agent systems: confidence-guided tracing, the difficulty router, the cascade's gate.

- :func:`trace`: from a failed run, the agents on the critical path to the failure (those whose calls
  addressed a device the check found wrong, and the planner that gave them their steps; the planner
  alone when no agent touched it: a step was missed), and of those the least confident (its lowest
  turn's mean token probability).  That agent, and only it, is upgraded to the stronger model.
- :class:`DifficultyRouter`: a logistic regression (scikit-learn) on features of the request's text
  (length, clauses, conditionals, times, scenes, people) predicting that a single agent fails; easy
  requests go to the single agent, hard ones to the multi-agent system.

The cascade's gate and the mobile agent's placement are the coordinator's controllers
(:mod:`coordinator.agents`), driven through the protocols of :mod:`cloud.agents.runtime`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import networkx as nx
import numpy as np
from sklearn.linear_model import LogisticRegression

from cloud.agents.record import RunRecord
from edgeweave.home.state import OCCUPANTS
from edgeweave.home.tasks import SCENE_PHRASES

System = Literal["sas", "mas"]


def wrong_devices(wrong_leaves: Sequence[str]) -> set[str]:
    """``lights.kitchen.level`` -> ``lights.kitchen`` (schedules and questions: their own names)."""
    return {".".join(leaf.split(".")[:2]) for leaf in wrong_leaves}


def critical_path(record: RunRecord, wrong: set[str] | None) -> list[str]:
    """The agents a failure can come from, upstream first.  ``wrong=None`` (no check, only the
    verifier's rejection): every agent but the verifier."""
    g = record.graph()
    workers = [a for a in record.agents if a.role != "verifier"]
    if wrong is None:
        return [a.name for a in workers]
    touched = [a.name for a in workers if a.devices & wrong]
    if not touched:  # nobody addressed what is wrong: the step was never planned (or never made)
        planners = [a.name for a in workers if a.role == "planner"]
        return planners or [a.name for a in workers]
    upstream = {p for n in touched for p in nx.ancestors(g, n)}
    return [n for n in nx.topological_sort(g) if n in upstream or n in touched]


def trace(record: RunRecord, wrong: set[str] | None) -> str:
    """The error-prone agent: the least confident on the critical path (ties: the most upstream)."""
    path = critical_path(record, wrong)
    confidence = {a.name: a.confidence for a in record.agents}
    return min(path, key=lambda n: (confidence[n], path.index(n)))


_TIME = re.compile(r"\b\d{1,2}:\d{2}\b")
_SCENES = tuple(p for phrases in SCENE_PHRASES.values() for p in phrases)


def features(request: str) -> list[float]:
    """What the router sees of a request: its text only (never the goal)."""
    text = request.lower()
    clauses = 1 + text.count(", ") + text.count(" and ")  # the corpus's joiners (JOINERS) all contain one
    return [
        len(text) / 100.0,
        float(clauses),
        float(text.count("if ")),
        float(len(_TIME.findall(text))),
        float(sum(p in text for p in _SCENES)),
        float(sum(f"{p}'s" in text or f"{p} likes" in text for p in OCCUPANTS)),
    ]


class DifficultyRouter:
    """Sends a request to the single agent unless it predicts that one fails (probability >= threshold)."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self._model = LogisticRegression(C=1.0, max_iter=1000)
        self._constant: bool | None = None  # every training label was the same

    def fit(self, requests: Sequence[str], sas_failed: Sequence[bool]) -> DifficultyRouter:
        y = np.asarray(sas_failed, dtype=int)
        if y.min() == y.max():
            self._constant = bool(y[0])
        else:
            self._model.fit(np.asarray([features(r) for r in requests]), y)
        return self

    def difficulty(self, request: str) -> float:
        if self._constant is not None:
            return float(self._constant)
        return float(self._model.predict_proba(np.asarray([features(request)]))[0, 1])

    def route(self, request: str) -> System:
        return "mas" if self.difficulty(request) >= self.threshold else "sas"
