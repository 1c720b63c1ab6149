"""Circinus's executor: runs one invocation of a planned pipeline end to end, each operator on the
tier its plan chose (device daemons and the cloud service, ``POST /v1/circinus/run``, directly or
relayed by a coordinator), passing intermediate results over the network.

The executor passes results on: every vision operator gets the camera
frame, an LLM operator gets a prompt made of its parents' answers (a vision
operator's answer is its class name), and an operator starts as soon as its
parents are done (branches of the DAG run side by side).  Device tiers are
spoken to with the cluster key (signed both ways), the cloud and a
coordinator with their API keys, all through the core's one client
(:class:`edgeweave.wire.client.BlockingClient`; bodies in :mod:`edgeweave.wire.circinus`).
The invocation's latency is measured end to end, next to each operator's
compute time as the tier reported it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from coordinator.circinus.planner import PipelinePlan
from coordinator.circinus.spec import Pipeline, PipelineTier
from edgeweave.errors import EdgeweaveError
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.vision import VisionConfig, frames, is_vision_checkpoint
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.circinus import RUN_PATH, OperatorAnswer, OperatorCall
from edgeweave.wire.client import BlockingClient, CallError, answer
from edgeweave.wire.tensor_frames import CONTENT_TYPE, decode, encode, pack, unpack

TIMEOUT_S = 300.0  # an LLM operator on a slow device, loaded on first use


class OperatorError(EdgeweaveError):
    """A tier refused or could not run an operator (``tier``: which, when known)."""

    def __init__(self, message: str, tier: PipelineTier | None = None) -> None:
        super().__init__(message)
        self.tier = tier


@dataclass(frozen=True)
class Endpoint:
    url: str
    key: ClusterKey | None = None  # a device daemon: requests signed with the cluster key
    api_key: str | None = None  # the cloud service or a coordinator: a bearer key
    path: str = RUN_PATH  # a coordinator relays at /v1/circinus/run/{endpoint}

    def post(self, body: bytes) -> bytes:
        try:
            return BlockingClient(self.url, self.key, self.api_key).call(
                "POST", self.path, body, CONTENT_TYPE, TIMEOUT_S
            )
        except CallError as e:
            raise OperatorError(str(e)) from None

    def run(self, x: torch.Tensor, call: OperatorCall) -> tuple[torch.Tensor, OperatorAnswer]:
        """One operator call: its input tensor in, its output tensor and answer back."""
        (result, meta), *_ = [
            decode(f) for f in unpack(self.post(pack([encode(x, call.model_dump(exclude_none=True))])))
        ]
        try:
            return result, answer(OperatorAnswer, meta, self.url + self.path)
        except CallError as e:
            raise OperatorError(str(e)) from None


@dataclass(frozen=True)
class Invocation:
    latency_s: float
    outputs: dict[str, str]  # per operator: a class name or the LLM's text
    compute_s: dict[str, float]  # per operator, as its tier measured it
    tiers: dict[str, PipelineTier]


class Executor:
    def __init__(self, endpoints: Mapping[PipelineTier, Endpoint]) -> None:
        self.endpoints = dict(endpoints)
        self._classes: dict[str, tuple[str, ...] | None] = {}

    def _classes_of(self, model: str) -> tuple[str, ...] | None:
        """A vision model's class names (None: an LLM), from its config."""
        if model not in self._classes:
            path = resolve_checkpoint(model)
            self._classes[model] = VisionConfig.from_dir(path).classes if is_vision_checkpoint(path) else None
        return self._classes[model]

    def _run(self, model: str, tier: PipelineTier, frame: torch.Tensor, parents: dict[str, str]) -> tuple[str, float]:
        if tier not in self.endpoints:
            raise OperatorError(f"{tier}: no endpoint for this tier", tier)
        classes = self._classes_of(model)
        if classes is None:
            prompt = "road report: " + "; ".join(f"{op} saw {out}" for op, out in sorted(parents.items()))
            x, call = torch.empty(0), OperatorCall(model=model, prompt=prompt)
        else:
            x, call = frame, OperatorCall(model=model)
        try:
            result, done = self.endpoints[tier].run(x, call)
        except OperatorError as e:
            raise OperatorError(f"{tier}: {e}", tier) from None
        output = (done.text or "") if classes is None else classes[int(result.argmax(-1)[0])]
        return output, done.seconds

    def time(self, model: str, tier: PipelineTier) -> float:
        """One run of ``model`` on ``tier`` (a sample frame or prompt), as the tier timed it: a
        profiling step on the tier itself."""
        frame = frames(1, seed=0)[0]
        return self._run(model, tier, frame, {"profile": "a car"})[1]

    def invoke(self, plan: PipelinePlan, pipeline: Pipeline, frame: torch.Tensor) -> Invocation:
        """One frame ``[1, 3, 64, 64]`` through the plan."""
        t0 = time.perf_counter()
        futures: dict[str, Future[tuple[str, float]]] = {}
        with ThreadPoolExecutor(len(pipeline.operators)) as pool:
            for name in pipeline.order:  # parents are submitted first; a worker waits on their results
                c = plan.choice(name)
                deps = {p: futures[p] for p in pipeline.parents(name)}
                futures[name] = pool.submit(
                    lambda c=c, deps=deps: self._run(
                        c.config.model, c.tier, frame, {p: f.result()[0] for p, f in deps.items()}
                    )
                )
            results = {name: f.result() for name, f in futures.items()}
        return Invocation(
            time.perf_counter() - t0,
            {n: r[0] for n, r in results.items()},
            {n: r[1] for n, r in results.items()},
            {c.op: c.tier for c in plan.choices},
        )
