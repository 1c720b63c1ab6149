"""Export a checkpoint to GGUF for llama.cpp, tokenizer embedded.

Architectures: ``llama`` (llama.cpp's "llama": rotary on interleaved pairs, so
q/k rows are permuted from Hugging Face's half-split layout exactly as
llama.cpp's own converter does) and ``qwen2`` (llama.cpp's "qwen2": NeoX
rotary, i.e. the half-split layout, so no permutation; q/k/v biases kept).
The tokenizer is the edgeweave byte vocabulary (model "llama", BYTE tokens, no
space prefix) or, for a Hugging Face checkpoint, its ``tokenizer.json``
(see :mod:`edgeweave.export.gguf_tokenizer`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import gguf
import numpy as np
import torch

from edgeweave.fileio import atomic_output
from edgeweave.models.config import ModelConfig
from edgeweave.models.gguf_layout import GLOBAL_TENSORS, LAYER_TENSORS, interleave_rotary, rotary_heads
from edgeweave.models.llama import Transformer

WeightDtype = Literal["f32", "f16"]


def gguf_tensors(model: Transformer, dtype: WeightDtype) -> dict[str, np.ndarray]:
    cfg = model.config
    out: dict[str, np.ndarray] = {}
    state = model.state_dict()
    if cfg.tie_embeddings:
        state.pop("lm_head.weight")
    for name, tensor in state.items():
        arr = tensor.detach().to(torch.float32).numpy()
        if name in GLOBAL_TENSORS:
            gguf_name = GLOBAL_TENSORS[name]
        else:
            _, _, idx, local = name.split(".", 3)  # model.layers.<i>.<local>
            gguf_name = f"blk.{idx}.{LAYER_TENSORS[local]}"
            heads = rotary_heads(local, cfg.n_heads, cfg.n_kv_heads)
            if cfg.arch == "llama" and heads:
                arr = interleave_rotary(arr, heads)
        # norms and biases stay f32 (llama.cpp requires it); matrices may be f16
        if dtype == "f16" and arr.ndim == 2:
            arr = arr.astype(np.float16)
        out[gguf_name] = np.ascontiguousarray(arr)
    return out


def _write_hparams(w: gguf.GGUFWriter, cfg: ModelConfig, name: str, dtype: WeightDtype) -> None:
    w.add_name(name)
    w.add_context_length(cfg.max_seq_len)
    w.add_embedding_length(cfg.dim)
    w.add_block_count(cfg.n_layers)
    w.add_feed_forward_length(cfg.ffn_dim)
    w.add_head_count(cfg.n_heads)
    w.add_head_count_kv(cfg.n_kv_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)


def export_gguf(model: Transformer, checkpoint: Path, out: Path, dtype: WeightDtype = "f32") -> Path:
    from edgeweave.export.gguf_tokenizer import write_tokenizer

    cfg = model.config

    def header(w: gguf.GGUFWriter) -> None:
        _write_hparams(w, cfg, checkpoint.name, dtype)
        write_tokenizer(w, cfg, checkpoint)

    return write_gguf(out, cfg.arch, header, gguf_tensors(model, dtype))


def write_gguf(out: Path, arch: str, header: Callable[[gguf.GGUFWriter], None], tensors: dict[str, np.ndarray]) -> Path:
    """A GGUF file at ``out`` (atomically): ``header`` adds its key/values, then ``tensors``."""
    with atomic_output(out) as tmp:
        w = gguf.GGUFWriter(str(tmp), arch)
        header(w)
        for name, arr in tensors.items():
            w.add_tensor(name, arr)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return out
