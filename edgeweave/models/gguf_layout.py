"""GGUF files as the torch model sees them: where each parameter lives, llama.cpp's rotary
row order, opening a file and reading its header (no torch: the device daemon reads headers too).

Shared by the GGUF exporters (:mod:`edgeweave.export.gguf_export`, ``gguf_lora``) and the
GGUF loader (:mod:`edgeweave.models.gguf_checkpoint`), so the two directions cannot drift.
llama.cpp's "llama" architecture rotates interleaved pairs of q/k rows where Hugging Face
(and our model) rotates the two halves of each head: its converter permutes those rows, and
:func:`split_rotary` undoes it.  "qwen2" uses the half-split (NeoX) order and is not permuted.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from edgeweave.errors import ModelFileError

# Hugging Face parameter name (inside one layer) -> GGUF tensor name
LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GLOBAL_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def interleave_rotary(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Half-split rotary rows -> interleaved pairs (llama.cpp's convert_hf_to_gguf permute)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def split_rotary(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Interleaved rotary pairs -> half-split rows: the inverse of :func:`interleave_rotary`."""
    return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rotary_heads(local: str, n_heads: int, n_kv_heads: int) -> int | None:
    """How many heads a layer tensor's rows hold if llama.cpp permutes them (q/k), else None."""
    if local.startswith("self_attn.q_proj"):
        return n_heads
    if local.startswith("self_attn.k_proj"):
        return n_kv_heads
    return None


def header_field(reader: gguf.GGUFReader, key: str) -> object | None:
    """A GGUF header value (None when the key is absent)."""
    f = reader.get_field(key)
    return None if f is None else f.contents()


def is_gguf(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(4) == b"GGUF"


def open_gguf(path: Path) -> gguf.GGUFReader:
    if not path.is_file():
        raise ModelFileError(str(path), "no such file")
    try:
        return gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError, KeyError) as e:
        raise ModelFileError(str(path), f"corrupt or not a GGUF file ({e})") from None
