"""What Dora plans from (pure data): per-layer costs on each device, the model's tensors at each
cut, the shared network, the workload and its QoE target.

Per-layer times are per sample and measured on the device itself (a profile is
never assumed); activation bytes are what crosses a cut after a layer, per
sample (the same bytes flow back as gradients in training).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelProfile:
    name: str
    activation_bytes: tuple[int, ...]  # per sample, leaving layer i
    weight_bytes: tuple[int, ...]  # per layer
    input_bytes: int = 0  # per sample, into the first layer (token ids, frames)

    def __post_init__(self) -> None:
        if not self.activation_bytes or len(self.activation_bytes) != len(self.weight_bytes):
            raise ValueError("activation_bytes and weight_bytes need one entry per layer")

    @property
    def layers(self) -> int:
        return len(self.weight_bytes)


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    memory_bytes: int  # free for a stage: weights, plus activations kept for backward in training
    forward_s: tuple[float, ...]  # per sample, per layer
    backward_s: tuple[float, ...]  # per sample, per layer
    busy_w: float  # above idle, while computing
    idle_w: float
    link_bytes_s: float  # its own link to the access point

    def compute_s(self, start: int, end: int, training: bool) -> float:
        """Per sample, layers [start, end)."""
        t = sum(self.forward_s[start:end])
        return t + sum(self.backward_s[start:end]) if training else t


@dataclass(frozen=True)
class Network:
    shared_bytes_s: float  # the access point: every transfer crosses it twice (up, then down)
    latency_s: float  # per transfer


@dataclass(frozen=True)
class Workload:
    training: bool
    batch: int  # samples per request (inference) or per step (training)


@dataclass(frozen=True)
class QoE:
    max_latency_s: float | None = None  # per request / step
    min_throughput: float | None = None  # samples/s

    def met(self, latency_s: float, throughput: float) -> bool:
        return (self.max_latency_s is None or latency_s <= self.max_latency_s) and (
            self.min_throughput is None or throughput >= self.min_throughput
        )
