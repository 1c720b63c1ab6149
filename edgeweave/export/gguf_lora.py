"""Export a LoRA adapter (:class:`edgeweave.models.lora.LoraAdapter`) to a GGUF LoRA adapter
file for llama.cpp (tLoRA's adapters served on a device; LoRA, Hu et al. 2021).

The layout is llama.cpp's own converter's (``convert_lora_to_gguf.py``) and what its loader
(``src/llama-adapter.cpp``) checks: ``general.type = "adapter"``, ``adapter.type = "lora"``,
``adapter.lora.alpha``; for each adapted weight ``blk.N.<name>.weight`` of the base GGUF
(:data:`edgeweave.models.gguf_layout.LAYER_TENSORS`) two tensors ``...weight.lora_a`` (A, numpy
``[rank, in]``, ggml ``ne = [in, rank]``) and ``...weight.lora_b`` (B, ``[out, rank]``).
llama.cpp adds ``alpha / rank * B @ (A @ x)`` to the layer's output, rank read from A's shape.
For architecture ``llama`` the base export permutes q/k rows (half-split rotary -> interleaved
pairs); B's rows are the layer's output rows, so they get the same permutation and A none.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from edgeweave.export.cache import cache_root, checkpoint_key
from edgeweave.export.gguf_export import write_gguf
from edgeweave.models.config import ModelConfig
from edgeweave.models.gguf_layout import LAYER_TENSORS, interleave_rotary
from edgeweave.models.lora import LoraAdapter


def lora_tensors(adapter: LoraAdapter, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """GGUF tensor name -> float32 array, for every adapted module."""
    adapter.check_fits(cfg)
    out: dict[str, np.ndarray] = {}
    for path, (a, b) in adapter.weights.items():
        _, _, idx, local = path.split(".", 3)  # model.layers.<i>.<block>.<target>
        name = f"blk.{idx}.{LAYER_TENSORS[local + '.weight']}"
        a_np, b_np = a.detach().float().numpy(), b.detach().float().numpy()
        if cfg.arch == "llama" and local in ("self_attn.q_proj", "self_attn.k_proj"):
            b_np = interleave_rotary(b_np, cfg.n_heads if local.endswith("q_proj") else cfg.n_kv_heads)
        out[f"{name}.lora_a"] = np.ascontiguousarray(a_np)
        out[f"{name}.lora_b"] = np.ascontiguousarray(b_np)
    return out


def export_gguf_lora(adapter: LoraAdapter, cfg: ModelConfig, out: Path, name: str = "adapter") -> Path:
    """Write ``adapter`` (for a model of ``cfg``) as a GGUF LoRA file at ``out`` (atomically)."""

    def header(w: gguf.GGUFWriter) -> None:
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_name(name)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(adapter.config.alpha))

    return write_gguf(out, cfg.arch, header, lora_tensors(adapter, cfg))


def cached_gguf_lora(adapter_dir: Path, cfg: ModelConfig) -> Path:
    """The GGUF LoRA file of the PEFT adapter directory ``adapter_dir``, exported once into the
    export cache under a key of the directory's bytes (:mod:`edgeweave.export.cache`)."""
    out = cache_root() / "exports" / f"{adapter_dir.name}-{checkpoint_key(adapter_dir)}.lora.gguf"
    if not out.is_file():
        export_gguf_lora(LoraAdapter.load(adapter_dir), cfg, out, adapter_dir.name)
    return out
