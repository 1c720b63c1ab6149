"""Eager PyTorch backend: the reference every other runtime is checked against.

Runs :class:`edgeweave.models.llama.Transformer` in cached mode (the same graph
that is exported to ExecuTorch), prefilling the prompt in one call and decoding
one token per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgeweave.generation.backend import Backend
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.hf_tokenizer import load_tokenizer
from edgeweave.models.llama import Transformer
from edgeweave.models.tokenizer import ByteTokenizer, Tokenizer


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: Transformer, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(tokenizer or ByteTokenizer(), model.config.max_seq_len)
        self.model = model.eval()
        self.model.setup_cache(self.context_length)

    @classmethod
    def load(cls, path: str | Path) -> TorchBackend:
        model = load_checkpoint(path)
        return cls(model, load_tokenizer(Path(path), model.config))

    @torch.inference_mode()
    def forward(self, ids: Sequence[int], start: int, all_logits: bool) -> np.ndarray:
        tokens = torch.tensor([list(ids)], dtype=torch.long)
        pos = torch.arange(start, start + len(ids), dtype=torch.long)
        out = self.model(tokens, pos)[0]
        return (out if all_logits else out[-1:]).float().numpy()


def load(path: Path, threads: int | None) -> TorchBackend:
    """The ``torch`` entry point of :func:`edgeweave.generation.backends.load_backend`."""
    if threads:
        torch.set_num_threads(threads)
    return TorchBackend.load(path)
