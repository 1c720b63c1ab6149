"""ExecuTorch backend: runs a ``.pte`` program through the ExecuTorch Python runtime.

The program (see :mod:`edgeweave.export.pte_export`) holds its own KV cache;
prefill writes positions 0..n-1 in one call, each decode step writes one
position.  ``logits`` prefills a fresh sequence and returns every position.
ExecuTorch's LLM kernels (``llama::update_cache`` / ``llama::custom_sdpa``,
which the exported attention runs on) are registered in the runtime before a
program loads.

One sequence per program (``slots == 1``): ``custom_sdpa`` takes one start
position for the whole batch, so rows at different positions (what batched
decoding of independent answers is) cannot share a call, and a second loaded
method would own a second cache but still run one row per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgeweave.errors import ModelFileError, UsageError
from edgeweave.generation.backend import Backend
from edgeweave.models.tokenizer import ByteTokenizer, Tokenizer


class ExecuTorchBackend(Backend):
    name = "executorch"

    def __init__(self, path: str | Path, tokenizer: Tokenizer | None = None) -> None:
        """``tokenizer``: the exported checkpoint's (a .pte carries none); default byte tokenizer."""
        from executorch.runtime import Runtime

        from edgeweave.export.pte_export import register_llm_kernels

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(str(path), "no such file")
        register_llm_kernels()
        try:
            program = Runtime.get().load_program(path)
            self._method = program.load_method("forward")
        except (RuntimeError, ValueError) as e:
            raise ModelFileError(str(path), f"not a loadable ExecuTorch program ({e})") from None
        super().__init__(tokenizer or ByteTokenizer(), self._max_sequence(self._method))

    @staticmethod
    def _max_sequence(method: object) -> int:
        # the KV-cache length: largest dynamic size the program accepts for input_pos
        meta = method.metadata  # type: ignore[attr-defined]
        return int(meta.input_tensor_meta(1).sizes()[0])

    def forward(self, ids: Sequence[int], start: int, all_logits: bool) -> np.ndarray:
        tokens = torch.tensor([list(ids)], dtype=torch.long)
        pos = torch.arange(start, start + len(ids), dtype=torch.long)
        out = self._method.execute([tokens, pos])[0][0].numpy()
        return (out if all_logits else out[-1:]).copy()


def load(path: Path, threads: int | None, slots: int = 1, adapter: Path | None = None) -> ExecuTorchBackend:
    """The ``executorch`` entry point of :func:`edgeweave.generation.backends.load_backend`.
    ``threads`` sizes the runtime's thread pool (XNNPACK's and the LLM kernels'; one per
    process, default: one per core).  No LoRA adapters: a .pte program's weights are baked into
    its graph, with no runtime hook to add an adapter's delta."""
    if adapter is not None:
        raise UsageError(
            "adapters", "the executorch backend cannot serve LoRA adapters (serve them on llamacpp or torch)"
        )
    if slots != 1:
        raise UsageError("slots", f"the executorch backend holds one sequence per program (asked for {slots})")
    if threads:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

        _unsafe_reset_threadpool(threads)  # "unsafe" while a method runs; none does yet
    from edgeweave.export.cache import runtime_file
    from edgeweave.models.hf_tokenizer import load_tokenizer

    return ExecuTorchBackend(runtime_file(path, "pte"), load_tokenizer(path) if path.is_dir() else None)
