"""Dora's per-layer profile of a model on this device (what ``POST /v1/dora/profile`` answers and
the partitioner plans from): each layer timed as a one-layer stage (:mod:`device.dora.stage`)."""

from __future__ import annotations

import time

import torch

from device.dora.stage import cut, load_model, sample_batch
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.wire.dora import LayerProfile


def profile_layers(model: str, batch: int, seq_len: int, rounds: int) -> LayerProfile:
    """Per-sample forward and backward seconds of every layer (medians, each layer timed as a
    one-layer stage on the previous one's real output), bytes leaving each layer per sample, each
    layer's weight bytes (the embedding and the head count in the first and last layer) and the
    input's bytes per sample."""
    path = resolve_checkpoint(model)
    full = load_model(path)
    x, _ = sample_batch(path, batch, seq_len, torch.Generator().manual_seed(0))
    input_bytes = x[0].numel() * x.element_size()
    fwd: list[float] = []
    bwd: list[float] = []
    activation: list[int] = []
    weights: list[int] = []
    for i in range(full.config.n_layers):
        stage = cut(full, i, i + 1).train()
        f_times, b_times = [], []
        for _ in range(rounds):
            inp = x if i == 0 else x.detach().requires_grad_()
            t0 = time.perf_counter()
            out = stage(inp)
            t1 = time.perf_counter()
            out.sum().backward()
            t2 = time.perf_counter()
            f_times.append((t1 - t0) / batch)
            b_times.append((t2 - t1) / batch)
        fwd.append(sorted(f_times)[rounds // 2])
        bwd.append(sorted(b_times)[rounds // 2])
        activation.append(out[0].numel() * out.element_size())
        weights.append(sum(p.numel() * p.element_size() for p in stage.parameters()))
        x = out.detach()
    return LayerProfile(
        model=model,
        batch=batch,
        seq_len=seq_len,
        forward_s=fwd,
        backward_s=bwd,
        activation_bytes=activation,
        weight_bytes=weights,
        input_bytes=input_bytes,
    )
