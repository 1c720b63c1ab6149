"""``edgeweave device serve --config FILE``: load the models, serve, advertise.

Each configured model is loaded on its backend (exporting GGUF / .pte once
into the cache when given a checkpoint) and warmed up with one short
generation, which also gives the first measured tokens/s the coordinator sees.  Each of a
model's LoRA adapters (``adapters`` of its ``[[device.models]]`` entry) is served too, as model
``<name>:<adapter>``, by a worker of its own: llama.cpp applies an adapter to every sequence of a
context, so an adapter gets its own backend (model load, context, KV cache); on torch the adapter
is merged into that backend's weights; ExecuTorch refuses adapters.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from device.advertise import Advertiser
from device.backends.llamacpp_backend import default_threads, prefer_passive_openmp
from device.server import create_app
from device.worker import ModelWorker
from edgeweave.config import DeviceConfig, EdgeweaveConfig, ModelSpec
from edgeweave.errors import UsageError
from edgeweave.generation.backends import load_backend
from edgeweave.serving.service import READY_PREFIX, announce, serve_until_signal
from edgeweave.wire.auth import ClusterKey

log = logging.getLogger("edgeweave.device")


def served(spec: ModelSpec) -> list[tuple[ModelSpec, Path | None]]:
    """The model ids one entry serves: the base, then each adapter as ``<name>:<adapter>``."""
    names = [a.name for a in spec.adapters]
    if len(set(names)) != len(names):
        raise UsageError("adapters", f"{spec.name}: an adapter name appears twice ({', '.join(names)})")
    return [
        (spec, None),
        *(
            (spec.model_copy(update={"served_name": f"{spec.name}:{a.name}", "adapters": []}), a.path)
            for a in spec.adapters
        ),
    ]


def load_workers(cfg: DeviceConfig) -> list[ModelWorker]:
    cores = os.cpu_count() or 1
    llama_threads = [m.threads or default_threads() for m in cfg.models if m.backend == "llamacpp"]
    if llama_threads and prefer_passive_openmp(max(llama_threads)):
        log.info("%s: llama.cpp threads take every core: they sleep while waiting (OMP_WAIT_POLICY=PASSIVE)", cfg.id)
    workers = []
    for spec, adapter in (s for m in cfg.models for s in served(m)):
        backend = load_backend(spec.backend, spec.model, threads=spec.threads, slots=spec.slots, adapter=adapter)
        worker = ModelWorker(spec, backend, cfg.power_model, cores)
        worker.warm_up()
        workers.append(worker)
        log.info("%s: %s on %s, %.0f tok/s decode", cfg.id, spec.name, spec.backend, worker.decode_tok_s)
    return workers


async def serve_device(cfg: EdgeweaveConfig) -> None:
    dev = cfg.device
    assert dev is not None
    key = ClusterKey(cfg.cluster.secret_bytes())
    workers = await asyncio.to_thread(load_workers, dev)
    app = create_app(dev, key, workers)
    advertiser: Advertiser | None = None

    async def ready(url: str) -> None:
        nonlocal advertiser
        port = int(url.rsplit(":", 1)[1])
        if dev.advertise:
            advertiser = Advertiser(dev.id, dev.kind, dev.host, port, key.fingerprint, dev.interfaces)
            await advertiser.start()
        announce(f"{READY_PREFIX} device {dev.id} {url}")
        log.info("device %s (%s) serving %s on %s", dev.id, dev.kind, ", ".join(w.name for w in workers), url)

    async def stop() -> None:
        if advertiser is not None:
            await advertiser.stop()

    try:
        await serve_until_signal(app, dev.host, dev.port, ready, stop)
    finally:
        for w in workers:
            w.close()
