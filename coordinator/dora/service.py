"""Dora against the live cluster (blocking; the coordinator runs it off its event loop): measure
the devices, plan, and run a plan for real.

Profiles come from the devices themselves: per-layer times from ``POST
/v1/dora/profile``, free memory from their telemetry, power from their power
model, and each link from echo round trips (a 1-byte echo gives the latency,
a 1 MiB one the bandwidth).  The access point's capacity is taken as the
slowest link measured (every transfer crosses it).  A run loads the plan's
stages on its devices, times pipeline inference on a random batch (or
training steps), and unloads them; when a device of the plan leaves mid-run,
it re-plans over those left and carries on.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from coordinator.dora.driver import infer_plan, train_step
from coordinator.dora.partitioner import PartitionPlan
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network
from coordinator.dora.remote import RemoteStage, call, profile
from device.dora.stage import sample_batch
from edgeweave.errors import EdgeweaveError
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.client import CallError
from edgeweave.wire.dora import Measured

PROBE_BYTES = 1 << 20
DEPARTURE_WAIT_S = 15.0  # the registry marks a silent device down within a few heartbeats


class RunError(EdgeweaveError):
    """A run that cannot go on: no plan meets the QoE over the devices left, or a stage call failed
    while every device of the plan is still up."""


@dataclass(frozen=True)
class Member:
    """A device taking part: its id, URL, free memory and power model."""

    id: str
    url: str
    memory_bytes: int
    idle_w: float
    max_w: float


def _link(url: str, key: ClusterKey) -> tuple[float, float]:
    """(one-way latency s, bytes/s) from echo round trips."""
    t0 = time.perf_counter()
    call(url, key, "POST", "/v1/dora/echo", b"x")
    rtt = time.perf_counter() - t0
    t0 = time.perf_counter()
    call(url, key, "POST", "/v1/dora/echo", bytes(PROBE_BYTES))
    big = time.perf_counter() - t0
    return rtt / 2, 2 * PROBE_BYTES / max(big - rtt, 1e-6)


def measure(
    members: Sequence[Member], key: ClusterKey, model: str, seq_len: int
) -> tuple[ModelProfile, list[DeviceProfile], Network]:
    devices: list[DeviceProfile] = []
    model_profile: ModelProfile | None = None
    latencies: list[float] = []
    for m in members:
        prof = profile(m.url, key, model, batch=2, seq_len=seq_len, rounds=3)
        latency, link = _link(m.url, key)
        latencies.append(latency)
        devices.append(
            DeviceProfile(
                m.id,
                m.memory_bytes,
                tuple(prof.forward_s),
                tuple(prof.backward_s),
                m.max_w - m.idle_w,
                m.idle_w,
                link,
            )
        )
        model_profile = ModelProfile(model, tuple(prof.activation_bytes), tuple(prof.weight_bytes), prof.input_bytes)
    if model_profile is None:
        raise ValueError("no device to measure")
    net = Network(min(d.link_bytes_s for d in devices), max(latencies))
    return model_profile, devices, net


def _load(plan: PartitionPlan, urls: dict[str, str], key: ClusterKey, model: str, lr: float) -> list[list[RemoteStage]]:
    run_id = uuid.uuid4().hex[:8]
    pipes: list[list[RemoteStage]] = []
    try:
        for p, pipe in enumerate(plan.pipelines):
            pipes.append([])
            for i, s in enumerate(pipe.stages):
                sid = f"run-{run_id}-{p}-{i}"
                pipes[-1].append(RemoteStage.load(urls[s.device], key, sid, model, s.start, s.end, lr))
    except CallError:
        _unload(pipes)
        raise
    return pipes


def _unload(pipes: list[list[RemoteStage]]) -> None:
    for pipe in pipes:
        for stage in pipe:
            with contextlib.suppress(CallError):  # a device that left keeps nothing of ours
                stage.unload()


def run(
    plan: PartitionPlan,
    members: Sequence[Member],
    key: ClusterKey,
    model: str,
    training: bool,
    seq_len: int,
    steps: int,
    replan: Callable[[frozenset[str]], PartitionPlan | None] | None = None,
    present: Callable[[], frozenset[str]] | None = None,
) -> Measured:
    """Load the plan's stages, time ``steps`` batches through them, unload; returns what was measured.

    If a stage call fails and ``present`` soon shows a device of the plan gone, ``replan`` gives the
    plan for those left, its stages are loaded, and the batch is run again from the start (an
    inference request is restarted; a training run goes on from the model's checkpoint, since the
    weights trained so far were partly on the device that left)."""
    urls = {m.id: m.url for m in members}
    checkpoint = resolve_checkpoint(model)  # the batch's shape comes from the model's config
    lr = 1e-3 if training else 0.0
    pipes = _load(plan, urls, key, model, lr)
    batch = sum(p.samples for p in plan.pipelines)
    g = torch.Generator().manual_seed(0)
    times, losses, replans = [], [], 0
    try:
        for _ in range(steps):
            inputs, targets = sample_batch(checkpoint, batch, seq_len, g)
            while True:
                t0 = time.perf_counter()
                try:
                    loss = _batch(plan, pipes, inputs, targets, training)
                    if loss is not None:
                        losses.append(loss)
                    break
                except CallError:
                    if replan is None or present is None:
                        raise
                    left = _wait_for_departure(set(plan.devices), present)
                    new = replan(left)
                    if new is None:
                        raise RunError(f"no plan meets the QoE with {sorted(left)}") from None
                    _unload(pipes)
                    plan, pipes, replans = new, _load(new, urls, key, model, lr), replans + 1
            times.append(time.perf_counter() - t0)
        return Measured(batch_s=sorted(times)[len(times) // 2], steps=steps, losses=losses, replans=replans)
    finally:
        _unload(pipes)


def _batch(
    plan: PartitionPlan, pipes: list[list[RemoteStage]], inputs: torch.Tensor, targets: torch.Tensor, training: bool
) -> float | None:
    shares = [p.samples for p in plan.pipelines]
    if training:
        return train_step(pipes, shares, inputs, targets, plan.micro_batches)
    infer_plan(pipes, shares, inputs, plan.micro_batches)
    return None


def _wait_for_departure(needed: set[str], present: Callable[[], frozenset[str]]) -> frozenset[str]:
    """Who is left once a device the plan needs is gone from the registry (a failure that is not a
    departure, within ``DEPARTURE_WAIT_S``, is raised as it was)."""
    deadline = time.monotonic() + DEPARTURE_WAIT_S
    while time.monotonic() < deadline:
        now = present()
        if not needed <= now:
            return now
        time.sleep(0.2)
    raise RunError(f"a stage call failed but every device of the plan ({sorted(needed)}) is still up")
