"""Dora against the live cluster (blocking; the coordinator runs it off its event loop): measure
the devices, plan, and run a plan for real.

Profiles come from the devices themselves: per-layer times from ``POST
/v1/dora/profile``, free memory from their telemetry, power from their power
model, and each link from echo round trips (a 1-byte echo gives the latency,
a 1 MiB one the bandwidth).  The access point's capacity is taken as the
slowest link measured (every transfer crosses it).  A run loads the plan's
stages on its devices, times pipeline inference on a random batch (or
training steps), and unloads them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from coordinator.dora.driver import infer, train_step
from coordinator.dora.partitioner import Plan
from coordinator.dora.profiles import DeviceProfile, ModelProfile, Network
from coordinator.dora.remote import RemoteStage, call, profile
from edgeweave.auth import ClusterKey

PROBE_BYTES = 1 << 20


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
                tuple(prof["forward_s"]),
                tuple(prof["backward_s"]),
                m.max_w - m.idle_w,
                m.idle_w,
                link,
            )
        )
        model_profile = ModelProfile(model, tuple(prof["activation_bytes"]), tuple(prof["weight_bytes"]))
    if model_profile is None:
        raise ValueError("no device to measure")
    net = Network(min(d.link_bytes_s for d in devices), max(latencies))
    return model_profile, devices, net


def run(
    plan: Plan,
    members: Sequence[Member],
    key: ClusterKey,
    model: str,
    training: bool,
    seq_len: int,
    steps: int,
) -> dict[str, Any]:
    """Load the plan's stages, time ``steps`` batches through them, unload; returns what was measured."""
    urls = {m.id: m.url for m in members}
    run_id = uuid.uuid4().hex[:8]
    lr = 1e-3 if training else 0.0
    pipes: list[list[RemoteStage]] = []
    try:
        for p, pipe in enumerate(plan.pipelines):
            pipes.append([])
            for i, s in enumerate(pipe.stages):
                sid = f"run-{run_id}-{p}-{i}"
                pipes[-1].append(RemoteStage.load(urls[s.device], key, sid, model, s.start, s.end, lr))
        batch = sum(p.samples for p in plan.pipelines)
        g = torch.Generator().manual_seed(0)
        times, losses = [], []
        for _ in range(steps):
            seq = torch.randint(8, 264, (batch, seq_len + 1), generator=g)
            tokens, targets = seq[:, :-1], seq[:, 1:]
            t0 = time.perf_counter()
            if training:
                shares = [p.samples for p in plan.pipelines]
                losses.append(train_step(pipes, shares, tokens, targets, plan.micro_batches))
            else:
                parts = tokens.split([p.samples for p in plan.pipelines])
                with ThreadPoolExecutor(len(pipes)) as pool:  # pipelines run side by side
                    list(pool.map(lambda pp: infer(pp[0], pp[1], plan.micro_batches), zip(pipes, parts, strict=True)))
            times.append(time.perf_counter() - t0)
        return {"batch_s": sorted(times)[len(times) // 2], "steps": steps, "losses": losses}
    finally:
        for pipe_stages in pipes:
            for stage in pipe_stages:
                stage.unload()
