"""tLoRA's shared super-model (arXiv 2602.07263): one frozen base Transformer, many jobs'
adapters, one forward over a batch that mixes the jobs' samples.

The base's target linears (the union over member jobs) are wrapped once by
:func:`kernels.multi_lora.attach_multi_lora`, all sharing one :class:`LoraRouting`.  A forward takes
the batch's samples ordered by job and right-padded to the batch's longest (with causal attention a
real token never sees the padding after it, so its logits do not depend on the padding width);
sample rows become ``Segments.of_rows(job per sample).repeat_rows(T)``, and each module's adapter
list holds every job's :class:`LoraWeights` (None where a job does not adapt that module).  Ranks
differ per job and nothing is padded to the largest.  Each job's adapter is a
:class:`JobAdapter` of ``nn.Parameter`` pairs, the only tensors gradients flow into.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from edgeweave.models.config import ModelConfig
from edgeweave.models.llama import Transformer
from edgeweave.models.lora import LoraAdapter, LoraConfig, module_paths
from kernels.multi_lora import Impl, LoraRouting, LoraWeights, Segments, attach_multi_lora


@dataclass
class JobAdapter:
    """One job's trainable adapter: module path -> (A, B) parameters, in ``module_paths`` order."""

    config: LoraConfig
    base_model: str
    params: dict[str, tuple[nn.Parameter, nn.Parameter]]

    @classmethod
    def of(cls, adapter: LoraAdapter) -> JobAdapter:
        """Trainable copies of ``adapter``'s tensors (fp32)."""
        params = {
            path: (nn.Parameter(a.detach().float().clone()), nn.Parameter(b.detach().float().clone()))
            for path, (a, b) in adapter.weights.items()
        }
        return cls(adapter.config, adapter.base_model, params)

    def parameters(self) -> list[nn.Parameter]:
        return [p for pair in self.params.values() for p in pair]

    def snapshot(self) -> LoraAdapter:
        """A detached copy as a LoraAdapter."""
        weights = {path: (a.detach().clone(), b.detach().clone()) for path, (a, b) in self.params.items()}
        return LoraAdapter(self.config, self.base_model, weights)

    def weights(self, path: str) -> LoraWeights | None:
        pair = self.params.get(path)
        return None if pair is None else LoraWeights(pair[0], pair[1], self.config.scaling)


class SuperModel:
    """The frozen shared base plus multi-LoRA routing over whichever adapters a batch uses."""

    def __init__(self, base: Transformer, impl: Impl = "segmented") -> None:
        for p in base.parameters():
            p.requires_grad_(False)
        self.base = base
        self.routing = LoraRouting(impl=impl)
        self._attached: set[str] = set()

    @property
    def config(self) -> ModelConfig:
        return self.base.config

    def attach(self, lora: LoraConfig) -> None:
        """Wrap the linears ``lora`` adapts (once; shared by every job adapting them)."""
        paths = [p for p in module_paths(self.base.config, lora) if p not in self._attached]
        attach_multi_lora(self.base, paths, self.routing)
        self._attached.update(paths)

    def forward(
        self, tokens: torch.Tensor, job_per_sample: Sequence[int], adapters: Sequence[JobAdapter]
    ) -> torch.Tensor:
        """tokens [B, T] (rows ordered by job) -> logits [B, T, vocab]; row ``i`` goes through
        ``adapters[job_per_sample[i]]``."""
        if len(job_per_sample) != tokens.shape[0]:
            raise ValueError(f"{len(job_per_sample)} job indices for {tokens.shape[0]} samples")
        segments = Segments.of_rows(list(job_per_sample))
        if len(set(segments.adapters)) != len(segments.adapters):
            raise ValueError("samples must be ordered by job (each job's samples adjacent)")
        self.routing.segments = segments.repeat_rows(tokens.shape[1])
        self.routing.weights = {path: [a.weights(path) for a in adapters] for path in self._attached}
        try:
            return self.base(tokens)
        finally:  # the routing must not keep a finished batch's tensors alive
            self.routing.segments = None
            self.routing.weights = {}
