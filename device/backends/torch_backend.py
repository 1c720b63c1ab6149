"""Eager PyTorch backend: the reference every other runtime is checked against.

Runs :class:`edgeweave.models.llama.Transformer` in cached mode, prefilling the
prompt in one call and decoding one token per call.  With ``slots > 1`` its KV
cache holds that many sequences (one cache row each) and :meth:`forward_rows`
evaluates several of them in one model call.  Rows are grouped by length and
each group is one call, every row at its own positions in its own slot: the
decode rows of a step (one token each) share one call, while a prompt being
prefilled runs beside them in its own.  Padding a decode row to a prompt's
length instead would multiply its work by that length, and prefill on a CPU is
already bound by compute, so batching it with other rows buys nothing.

A LoRA adapter is merged into the weights at load (``W + scaling * B @ A``, :func:`merge_adapter`):
one adapter per backend, so the merged model runs at the base model's speed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgeweave.errors import UsageError
from edgeweave.generation.backend import Backend, BatchRow
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.hf_tokenizer import load_tokenizer
from edgeweave.models.llama import Transformer
from edgeweave.models.lora import LoraAdapter
from edgeweave.models.tokenizer import ByteTokenizer, Tokenizer


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: Transformer, tokenizer: Tokenizer | None = None, slots: int = 1) -> None:
        if slots < 1:
            raise UsageError("slots", f"must be at least 1 (got {slots})")
        super().__init__(tokenizer or ByteTokenizer(), model.config.max_seq_len)
        self.slots = slots
        self.model = model.eval()
        self.model.setup_cache(self.context_length, slots)

    @classmethod
    def load(cls, path: str | Path, slots: int = 1, adapter: Path | None = None) -> TorchBackend:
        model = load_checkpoint(path)
        if adapter is not None:
            merge_adapter(model, LoraAdapter.load(adapter))
        return cls(model, load_tokenizer(Path(path), model.config), slots)

    def forward(self, ids: Sequence[int], start: int, all_logits: bool) -> np.ndarray:
        out = self._run([list(ids)], [start], [0])[0]
        return (out if all_logits else out[-1:]).numpy()

    def forward_rows(self, rows: Sequence[BatchRow]) -> list[np.ndarray]:
        slots = [row.slot for row in rows]
        if any(not 0 <= s < self.slots for s in slots):
            raise ValueError(f"slot out of range: this backend holds {self.slots} sequence(s)")
        if len(set(slots)) != len(slots):
            raise ValueError("each slot may appear once per step")
        if any(not row.ids for row in rows):
            raise ValueError("every row needs at least one token")
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            by_length[len(row.ids)].append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(rows)
        for group in by_length.values():
            logits = self._run(
                [list(rows[i].ids) for i in group], [rows[i].start for i in group], [rows[i].slot for i in group]
            )
            for i, row_logits in zip(group, logits, strict=True):
                out[i] = row_logits[-1].numpy()
        return out

    @torch.inference_mode()
    def _run(self, ids: list[list[int]], starts: list[int], slots: list[int]) -> torch.Tensor:
        """Rows of equal length, each at its own start in its own slot -> logits [B, T, vocab]."""
        t = len(ids[0])
        if max(starts) + t > self.context_length:
            raise ValueError(f"positions past the context of {self.context_length}")
        tokens = torch.tensor(ids, dtype=torch.long)
        pos = torch.tensor(starts, dtype=torch.long).unsqueeze(1) + torch.arange(t)
        return self.model(tokens, pos, torch.tensor(slots, dtype=torch.long)).float()


@torch.no_grad()
def merge_adapter(model: Transformer, adapter: LoraAdapter) -> Transformer:
    """Fold ``adapter`` into ``model``'s weights in place (computed in float32)."""
    adapter.check_fits(model.config)
    for path, (a, b) in adapter.weights.items():
        w = model.get_submodule(path).weight
        w.copy_((w.float() + adapter.config.scaling * (b.float() @ a.float())).to(w.dtype))
    return model


def load(path: Path, threads: int | None, slots: int = 1, adapter: Path | None = None) -> TorchBackend:
    """The ``torch`` entry point of :func:`edgeweave.generation.backends.load_backend`."""
    if threads:
        torch.set_num_threads(threads)
    return TorchBackend.load(path, slots, adapter)
