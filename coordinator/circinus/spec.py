"""Circinus's pipeline spec: compound AI pipelines as typed, validated DAGs of operators, and the
queries that run them under SLOs (Python API or YAML).

An operator has configuration choices (model variant, input resolution,
batch size, precision) and the tiers it may run on (``device``, ``edge``,
``cloud``); a pipeline is a DAG of operators (edges say whose output feeds
whom); a query runs a pipeline at a rate under an SLO on end-to-end latency,
minimum accuracy and a cost cap per invocation.  An optional ``infrastructure`` block
gives the tiers (speed relative to where operators are measured, price,
capacity) and the links between them.  Validation names the problem:
duplicate or unknown operators, a cycle (with its operators in order), a
query for an unknown pipeline, tiers without a link.  Whether an SLO is achievable at
all depends on the profiles (:func:`coordinator.circinus.planner.impossible`).

YAML::

    pipelines:
      - name: traffic
        operators:
          - {name: detect, kind: detector, tiers: [device, edge],
             configs: [{model: det-s, resolution: 64}, {model: det-l, resolution: 96}]}
          - {name: summarize, kind: llm, tiers: [edge, cloud], configs: [{model: weave-home-cloud}]}
        edges: [[detect, summarize]]
    queries:
      - {id: cam-1, pipeline: traffic, rate: 2.0,
         slo: {latency_s: 0.5, min_accuracy: 0.8, max_cost_usd: 0.001}}
    infrastructure:
      tiers: {device: {factor: 4, capacity: 1}, edge: {factor: 1, usd_per_hour: 0.1, capacity: 2},
              cloud: {factor: 0.2, usd_per_hour: 2, capacity: 8}}
      links: [{between: [device, edge], rtt_ms: 5, mbit: 50}, {between: [edge, cloud], rtt_ms: 40, mbit: 100},
              {between: [device, cloud], rtt_ms: 45, mbit: 20}]
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgeweave.errors import UsageError

PipelineTier = Literal["device", "edge", "cloud"]
TIERS: tuple[PipelineTier, ...] = ("device", "edge", "cloud")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OperatorConfig(_Strict):
    model: str = Field(min_length=1)
    resolution: int | None = Field(default=None, ge=1)
    batch: int = Field(default=1, ge=1, le=1024)
    precision: Literal["fp32", "fp16", "int8"] = "fp32"

    @property
    def key(self) -> str:
        """A short name for profiles and plans: ``det-s@64x1/fp32``."""
        res = f"@{self.resolution}" if self.resolution else ""
        return f"{self.model}{res}x{self.batch}/{self.precision}"


class Operator(_Strict):
    name: str = Field(pattern=NAME)
    kind: str = Field(min_length=1)
    configs: tuple[OperatorConfig, ...] = Field(min_length=1)
    tiers: tuple[PipelineTier, ...] = Field(min_length=1)


class Pipeline(_Strict):
    name: str = Field(pattern=NAME)
    operators: tuple[Operator, ...] = Field(min_length=1)
    edges: tuple[tuple[str, str], ...] = ()
    input_bytes: int = Field(default=0, ge=0)  # per invocation, from the source tier to the first operators

    @model_validator(mode="after")
    def _a_dag_of_known_operators(self) -> Pipeline:
        names = [op.name for op in self.operators]
        _once(names, "operators named")
        for src, dst in self.edges:
            for end in (src, dst):
                if end not in names:
                    raise ValueError(f"edge [{src}, {dst}]: unknown operator {end!r} (operators: {', '.join(names)})")
        cycle = _cycle(names, self.edges)
        if cycle:
            raise ValueError(f"the edges form a cycle: {' -> '.join(cycle)}")
        return self

    @cached_property
    def order(self) -> tuple[str, ...]:
        """Operators in topological order (ties in spec order)."""
        indeg = {op.name: 0 for op in self.operators}
        for _, dst in self.edges:
            indeg[dst] += 1
        out: list[str] = []
        ready = [n for n in indeg if indeg[n] == 0]
        while ready:
            n = ready.pop(0)
            out.append(n)
            for src, dst in self.edges:
                if src == n:
                    indeg[dst] -= 1
                    if indeg[dst] == 0:
                        ready.append(dst)
        return tuple(out)

    def operator(self, name: str) -> Operator:
        return next(op for op in self.operators if op.name == name)

    def parents(self, name: str) -> tuple[str, ...]:
        return tuple(src for src, dst in self.edges if dst == name)

    @cached_property
    def paths(self) -> tuple[tuple[str, ...], ...]:
        """Every path from an operator with no inputs to one with no outputs."""
        children = {op.name: [d for s, d in self.edges if s == op.name] for op in self.operators}

        def walk(n: str) -> list[tuple[str, ...]]:
            return [(n,)] if not children[n] else [(n, *rest) for c in children[n] for rest in walk(c)]

        return tuple(p for n in self.order if not self.parents(n) for p in walk(n))


def _once(names: list[str], what: str) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{what} twice: {', '.join(dup)}")


def _cycle(names: list[str], edges: tuple[tuple[str, str], ...]) -> list[str] | None:
    """One cycle, as the operators along it (first repeated at the end), or None."""
    children = {n: [d for s, d in edges if s == n] for n in names}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for c in children[n]:
            if state.get(c) == 1:
                return [*path[path.index(c) :], c]
            if c not in state and (found := visit(c)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in names:
        if n not in state and (found := visit(n)):
            return found
    return None


class SLO(_Strict):
    latency_s: float = Field(gt=0)  # end to end, per invocation
    min_accuracy: float = Field(default=0.0, ge=0.0, le=1.0)
    max_cost_usd: float | None = Field(default=None, ge=0.0)  # per invocation


class Query(_Strict):
    id: str = Field(pattern=NAME)
    pipeline: str
    slo: SLO
    rate: float = Field(default=1.0, gt=0.0, le=1e6)  # invocations per second


class TierModel(_Strict):
    factor: float = Field(gt=0)  # its time for what takes 1 s where operators are measured
    usd_per_hour: float = Field(default=0.0, ge=0)  # billed per busy hour
    capacity: float = Field(ge=0)  # compute-seconds per second it offers


class Link(_Strict):
    between: tuple[PipelineTier, PipelineTier]
    rtt_ms: float = Field(ge=0)
    mbit: float = Field(gt=0)


class Infrastructure(_Strict):
    tiers: dict[PipelineTier, TierModel] = Field(min_length=1)
    links: tuple[Link, ...] = ()
    source: PipelineTier = "device"  # where inputs come from and answers go back to

    @model_validator(mode="after")
    def _every_pair_linked(self) -> Infrastructure:
        linked = {frozenset(link.between) for link in self.links}
        names = sorted({*self.tiers, self.source})
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if frozenset((a, b)) not in linked:
                    raise ValueError(f"no link between {a} and {b} (add one under links)")
        return self


class Workload(_Strict):
    pipelines: tuple[Pipeline, ...] = Field(min_length=1)
    queries: tuple[Query, ...] = ()
    infrastructure: Infrastructure | None = None

    @model_validator(mode="after")
    def _queries_name_known_pipelines(self) -> Workload:
        names = [p.name for p in self.pipelines]
        _once(names, "pipelines named")
        _once([q.id for q in self.queries], "query ids used")
        for q in self.queries:
            if q.pipeline not in names:
                raise ValueError(f"query {q.id}: unknown pipeline {q.pipeline!r} (pipelines: {', '.join(names)})")
        return self

    def pipeline(self, name: str) -> Pipeline:
        return next(p for p in self.pipelines if p.name == name)

    def by_pipeline(self) -> Iterator[tuple[Pipeline, list[Query]]]:
        for p in self.pipelines:
            yield p, [q for q in self.queries if q.pipeline == p.name]


def load(path: str | Path) -> Workload:
    """A workload from a YAML file; every problem is a :class:`UsageError` naming the file and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise UsageError(str(path), f"cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise UsageError(str(path), f"not valid YAML ({str(e).splitlines()[0]})") from None
    return parse(raw, str(path))


def parse(raw: object, source: str = "spec") -> Workload:
    try:
        return Workload.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise UsageError(f"{source}: {where}", first["msg"].removeprefix("Value error, ") + more) from None
