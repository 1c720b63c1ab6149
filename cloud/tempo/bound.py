"""An upper bound on the service gain of any schedule on a workload: the oracle Tempo is measured against.

Tempo fed the true output lengths is not an upper bound (it is a heuristic too: it can admit a
request that only just fits and lose it to later arrivals), so the benchmark's oracle is this
proven bound instead, the optimum of a relaxation of the engine:

- **work**: every engine iteration takes ``base + per_token * tokens + per_seq * seqs +
  per_kv * cached keys`` (:class:`~cloud.tempo.step_time.StepTime`, the simulator's own
  clock).  With at most ``B`` sequences an iteration, charging each sequence in it
  ``per_seq + base / B`` and each token ``per_token`` (plus its keys) never charges more than
  the iteration took.  A request of ``P`` prompt and ``n`` answer tokens runs in at least
  ``ceil(P / T) + n - 1`` iterations (its first token comes with its last prefill chunk, at
  most ``T`` tokens an iteration), computes ``P + n - 1`` tokens and reads
  ``(n - 1) * P + (n - 1)(n - 2) / 2`` cached keys in its decodes (its prefill chunks after the
  first read keys too, charged nothing here: the chunking is the scheduler's): :func:`min_work_s`.
  Preemption (recompute) only adds work.
- **jobs**: a deadline request is a job from its arrival to its deadline; an agent workflow is
  one job (all its calls' work) from its first call's arrival to its deadline; a latency request
  is a job from its arrival to its last token's due time.  A schedule that delivers a fraction
  ``x`` of a job's gain did at least ``x`` of its work inside its window (a latency request with
  ``k`` of ``n`` tokens on time did its prefill and ``k`` decodes before its last due time, and
  ``P + k c >= (k / n)(P + n c)``).
- **relaxation**: one machine of capacity 1 s/s; ``x`` fractional; KV memory, one token per
  iteration per request, tool gaps and dependency order dropped.  The linear program
  ``max sum g_j x_j`` subject to every interval holding the work of the jobs inside it is
  solved exactly by a greedy rule (:func:`relaxed_optimum`).

Every real schedule is feasible for the relaxation, so its optimum bounds the service gain of
every policy in :mod:`cloud.tempo.simulator` from above.  Our own construction (the paper
compares against its own policy with perfect knowledge).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud.tempo.simulator import EngineShape
from cloud.tempo.step_time import StepTime
from cloud.tempo.workload import Call
from edgeweave.wire.slo import CompoundSLO, DeadlineSLO, LatencySLO


@dataclass(frozen=True)
class Job:
    release_s: float
    due_s: float
    work_s: float
    gain: int


def min_work_s(prompt_tokens: int, output_tokens: int, step: StepTime, shape: EngineShape) -> float:
    """The least machine time serving one request can cost (see the module's docstring)."""
    p, n = prompt_tokens, output_tokens
    iterations = math.ceil(p / shape.max_batched_tokens) + n - 1
    keys = (n - 1) * p + (n - 1) * (n - 2) / 2
    per_seq = step.per_seq_s + step.base_s / shape.max_num_seqs
    return iterations * per_seq + (p + n - 1) * step.per_token_s + keys * step.per_kv_token_s


def jobs(calls: Sequence[Call], step: StepTime, shape: EngineShape) -> list[Job]:
    out: list[Job] = []
    workflows: dict[str, list[Call]] = {}
    for c in calls:
        work = min_work_s(c.prompt_tokens, c.output_tokens, step, shape)
        if isinstance(c.slo, LatencySLO):
            due = c.arrival_s + c.slo.ttft_s + (c.output_tokens - 1) * c.slo.tbt_s
            out.append(Job(c.arrival_s, due, work, c.output_tokens))
        elif isinstance(c.slo, DeadlineSLO):
            out.append(Job(c.arrival_s, c.arrival_s + c.slo.deadline_s, work, c.output_tokens))
        else:
            workflows.setdefault(c.slo.workflow_id, []).append(c)
    for wf in workflows.values():
        slo = wf[0].slo
        assert isinstance(slo, CompoundSLO)
        start = min(c.arrival_s for c in wf if not c.after)
        work = sum(min_work_s(c.prompt_tokens, c.output_tokens, step, shape) for c in wf)
        out.append(Job(start, start + slo.deadline_s, work, sum(c.output_tokens for c in wf)))
    return out


def gain_bound(calls: Sequence[Call], step: StepTime, shape: EngineShape) -> float:
    """The most service gain (useful tokens) any schedule on the engine can deliver on ``calls``:
    the optimum of the relaxation, solved exactly by the greedy rule (see :func:`relaxed_optimum`)."""
    return relaxed_optimum(jobs(calls, step, shape))


def relaxed_optimum(js: Sequence[Job]) -> float:
    """``max sum g_j x_j`` over ``0 <= x_j <= 1`` such that the work ``x_j w_j`` fits inside
    the windows on one machine of capacity 1 s/s.

    With interval windows that is feasible iff every interval ``[a, b]`` between two window
    ends holds the work of the jobs whose windows lie inside it (Hall's condition on a convex
    bipartite graph), so the feasible works form a polymatroid and the greedy rule is exact:
    jobs by gain per second of work, best first, each taking the most work every interval
    around its window still holds.  ``room[a, b]`` is that interval's free time."""
    js = [j for j in js if j.gain > 0]
    if not js:
        return 0.0
    points = np.unique([t for j in js for t in (j.release_s, j.due_s)])
    room = points[None, :] - points[:, None]  # [a, b]: b - a (only a < b is ever read)
    total = 0.0
    for j in sorted(js, key=lambda j: -j.gain / j.work_s if j.work_s > 0 else -math.inf):
        if j.work_s <= 0:  # a step model that charges nothing
            total += j.gain
            continue
        a, b = np.searchsorted(points, j.release_s), np.searchsorted(points, j.due_s)
        inside = room[: a + 1, b:]
        w = min(j.work_s, float(inside.min())) if b > a else 0.0
        if w > 0:
            inside -= w
            total += j.gain * w / j.work_s
    return total
