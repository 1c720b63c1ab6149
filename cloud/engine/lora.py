"""The engine's LoRA adapters: requests of different adapters in one batch (S-LoRA / Punica).

The engine's model has every adapted linear layer wrapped once by
:func:`kernels.multi_lora.attach_multi_lora`; each iteration the runner sets the shared
:class:`~kernels.multi_lora.LoraRouting`'s segments over the iteration's flattened tokens (each
sequence's tokens are one run, tagged with its adapter's index, ``NO_ADAPTER`` for the base), so
the base weights run once for the whole batch and every run adds its own adapter's delta through
the same multi-LoRA kernel tLoRA trains with (``segmented`` on CPU, ``triton`` on CUDA).

Adapters arrive from other threads (a fine-tuning job that just finished) while the engine thread
steps: :meth:`AdapterSet.add` only queues them under a lock, and the engine thread installs the
queue between iterations (:meth:`AdapterSet.install`), so no forward pass sees a half-built routing.
Each installed adapter also gets a prefix-cache root, a number the KV blocks' hash chain starts
from: the same tokens under two adapters have different keys and values, so they never share a
block (and an adapter replaced under the same name gets a fresh root).
"""

from __future__ import annotations

import itertools
import threading

import torch

from edgeweave.errors import UsageError
from edgeweave.models.llama import Transformer
from edgeweave.models.lora import LoraAdapter
from kernels.multi_lora import NO_ADAPTER, Impl, LoraRouting, LoraWeights, attach_multi_lora

BASE_ROOT = 0  # the base model's prefix-cache root


def default_impl(device: torch.device) -> Impl:
    return "triton" if device.type == "cuda" else "segmented"


class AdapterSet:
    """Adapters by name, their index in the routing's per-layer lists, and their cache roots."""

    def __init__(self, model: Transformer, impl: Impl) -> None:
        self._model = model
        self.routing = LoraRouting(impl=impl)
        self._index: dict[str, int] = {}
        self._root: dict[str, int] = {}
        self._pending: dict[str, LoraAdapter] = {}
        self._lock = threading.Lock()
        self._roots = itertools.count(1)

    @property
    def names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted({*self._index, *self._pending}))

    def add(self, name: str, adapter: LoraAdapter) -> None:
        """Queue ``adapter`` for serving as ``name`` (any thread); it serves from the next iteration."""
        if not name:
            raise UsageError("name", "an adapter needs a name")
        adapter.check_fits(self._model.config)
        with self._lock:
            self._pending[name] = adapter

    def check(self, name: str | None) -> None:
        names = self.names
        if name is not None and name not in names:
            if not names:
                raise UsageError("lora_adapter", f"no LoRA adapters are loaded here, so {name!r} cannot be served")
            raise UsageError("lora_adapter", f"no LoRA adapter {name!r} is loaded here (loaded: {', '.join(names)})")

    def install(self) -> None:
        """Put queued adapters into the routing (the engine thread, between iterations)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        p = next(self._model.parameters())
        for name, adapter in pending.items():
            idx = self._index.setdefault(name, len(self._index))
            self._root[name] = next(self._roots)
            attach_multi_lora(self._model, list(adapter.weights), self.routing)
            for path in adapter.weights:
                self.routing.weights.setdefault(path, [])
            for path, lst in self.routing.weights.items():
                lst.extend([None] * (len(self._index) - len(lst)))
                pair = adapter.weights.get(path)
                lst[idx] = (
                    None
                    if pair is None
                    else LoraWeights(
                        pair[0].to(p.device, p.dtype), pair[1].to(p.device, p.dtype), adapter.config.scaling
                    )
                )

    def index(self, name: str | None) -> int:
        return NO_ADAPTER if name is None else self._index[name]

    def root(self, name: str | None) -> int:
        return BASE_ROOT if name is None else self._root[name]
