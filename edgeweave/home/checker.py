"""The exact checker: a run passes when the final state equals the goal and nothing forbidden changed.

Both are judged on the state's leaves (:meth:`HomeState.flat`).  *Wrong* leaves differ from the goal;
*forbidden* ones are the wrong leaves the request never asked to touch (the goal keeps them as they
were), so a report tells "did not finish" apart from "broke something".
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict

from edgeweave.home.state import HomeState


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    wrong: tuple[str, ...] = ()  # leaves whose final value is not the goal's
    forbidden: tuple[str, ...] = ()  # of those, leaves the task should have left alone

    def summary(self) -> str:
        if self.passed:
            return "passed"
        return f"{len(self.wrong)} leaves wrong ({', '.join(self.wrong[:4])}), {len(self.forbidden)} forbidden"


def diff(before: HomeState, after: HomeState) -> dict[str, tuple[object, object]]:
    """Leaf -> (before, after) for every leaf that changed."""
    a, b = before.flat(), after.flat()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def describe_changes(before: HomeState, after: HomeState) -> str:
    """What a run changed, one ``leaf=value`` per line (new schedule entries and questions in full):
    the verifier's view of a run."""
    lines = [f"{k}={_value(v)}" for k, (_, v) in diff(before, after).items() if k not in ("schedules", "asked")]
    lines += [f"schedule {s.at} {s.name} {_value(s.arguments)}" for s in after.schedules if s not in before.schedules]
    lines += [f"asked {q}" for q in after.questions[len(before.questions) :]]
    return "\n".join(lines) if lines else "none"


def _value(v: object) -> str:
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def check(initial: HomeState, final: HomeState, goal: HomeState) -> CheckResult:
    want, got, start = goal.flat(), final.flat(), initial.flat()
    wrong = tuple(k for k in want if got[k] != want[k])
    forbidden = tuple(k for k in wrong if want[k] == start[k])
    return CheckResult(passed=not wrong, wrong=wrong, forbidden=forbidden)
