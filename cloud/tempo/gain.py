"""Service gain (Tempo): the useful tokens a request delivered under its SLO.

Finishing far ahead of an SLO adds nothing: a latency request's token counts
if it arrives by its own due time, a deadline request's tokens all count if
the last one is in time (else none), and a compound workflow's tokens all
count if its last call finishes by the workflow deadline.  SLO goodput counts
requests (workflows) whose every token is useful.

:func:`request_gain` judges one finished request; :class:`GainLedger` keeps
the running totals a server exports, completing compound workflows as their
last call finishes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeweave.wire.slo import SLO_TYPES, AnySlo, CompoundSLO, DeadlineSLO, LatencySLO, SloType


def latency_useful(slo: LatencySLO, arrival_s: float, token_times: Sequence[float]) -> int:
    return sum(t - arrival_s <= slo.ttft_s + i * slo.tbt_s for i, t in enumerate(token_times))


def by_deadline(deadline_s: float, start_s: float, token_times: Sequence[float]) -> int:
    """All tokens if the last is in time, else none."""
    return len(token_times) if token_times and token_times[-1] - start_s <= deadline_s else 0


def request_gain(slo: LatencySLO | DeadlineSLO, arrival_s: float, token_times: Sequence[float]) -> int:
    if isinstance(slo, LatencySLO):
        return latency_useful(slo, arrival_s, token_times)
    return by_deadline(slo.deadline_s, arrival_s, token_times)


@dataclass
class _Workflow:
    start_s: float
    deadline_s: float
    tokens: int = 0


@dataclass
class GainLedger:
    """Totals per request type: tokens delivered, useful tokens, requests judged and met."""

    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SLO_TYPES, 0))
    gain: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SLO_TYPES, 0))
    judged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SLO_TYPES, 0))
    met: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SLO_TYPES, 0))
    _workflows: dict[str, _Workflow] = field(default_factory=dict)

    def arrive(self, slo: AnySlo, arrival_s: float) -> None:
        """A request arrived (a compound call opens its workflow's clock if it is the first)."""
        if isinstance(slo, CompoundSLO) and slo.workflow_id not in self._workflows:
            self._workflows[slo.workflow_id] = _Workflow(arrival_s, slo.deadline_s)

    def finish(
        self, slo: LatencySLO | DeadlineSLO | CompoundSLO, arrival_s: float, token_times: Sequence[float]
    ) -> None:
        kind: SloType = slo.type
        if isinstance(slo, CompoundSLO):
            wf = self._workflows.setdefault(slo.workflow_id, _Workflow(arrival_s, slo.deadline_s))
            wf.tokens += len(token_times)
            self.tokens[kind] += len(token_times)
            if slo.last:
                del self._workflows[slo.workflow_id]
                in_time = bool(token_times) and token_times[-1] - wf.start_s <= wf.deadline_s
                self._judge(kind, wf.tokens if in_time else 0, in_time)
            return
        useful = request_gain(slo, arrival_s, token_times)
        self.tokens[kind] += len(token_times)
        self._judge(kind, useful, useful == len(token_times) and bool(token_times))

    def _judge(self, kind: SloType, useful: int, met: bool) -> None:
        self.gain[kind] += useful
        self.judged[kind] += 1
        self.met[kind] += met

    @property
    def open_workflows(self) -> int:
        return len(self._workflows)
