"""Load a GGUF file (llama.cpp's format) into the one torch model definition.

This is how the cloud engine serves the same real model as a device: the
file's tensors are dequantized (``gguf.quants``: F32, F16, BF16, Q8_0, Q4_0,
Q4_1, the K-quants) to float, renamed to Hugging Face's parameter names
(:mod:`edgeweave.models.gguf_layout`), and llama.cpp's interleaved rotary
rows are put back in half-split order.  The shape comes from the file's
``<arch>.*`` keys and its tokenizer from the embedded vocabulary
(:mod:`edgeweave.models.gguf_vocab`).  The weights are the quantized ones,
exactly: what differs from llama.cpp is only arithmetic (it multiplies with
activations rounded to 8 bits; this model multiplies in float), which the
tier-parity test and benchmark measure.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch

from edgeweave.errors import ModelFileError
from edgeweave.models.config import SUPPORTED_ARCHS, ModelConfig
from edgeweave.models.gguf_layout import GLOBAL_TENSORS, LAYER_TENSORS, open_gguf, rotary_heads, split_rotary
from edgeweave.models.gguf_layout import header_field as field
from edgeweave.models.gguf_vocab import gguf_tokenizer
from edgeweave.models.llama import Transformer
from edgeweave.models.tokenizer import Tokenizer

_GLOBAL_NAMES = {v: k for k, v in GLOBAL_TENSORS.items()}
_LAYER_NAMES = {v: k for k, v in LAYER_TENSORS.items()}


def gguf_config(reader: gguf.GGUFReader, source: str) -> ModelConfig:
    """The model's shape from the GGUF header (llama.cpp's own keys)."""
    arch = field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise ModelFileError(
            source, f"unsupported GGUF architecture {arch!r} (supported: {', '.join(SUPPORTED_ARCHS)})"
        )

    def key(name: str, default: object | None = None) -> object:
        value = field(reader, f"{arch}.{name}")
        if value is None and default is None:
            raise ModelFileError(source, f"GGUF header has no {arch}.{name}")
        return default if value is None else value

    scaling = field(reader, f"{arch}.rope.scaling.type")
    if scaling not in (None, "none"):
        raise ModelFileError(source, f"unsupported rope scaling {scaling!r}")
    names = {t.name for t in reader.tensors}
    n_heads, dim = int(key("attention.head_count")), int(key("embedding_length"))
    head_dim = int(key("attention.key_length", dim // n_heads))
    if int(key("rope.dimension_count", head_dim)) != head_dim:
        raise ModelFileError(source, "partial rotary embeddings are not supported")
    tokenizer = field(reader, "edgeweave.tokenizer")
    return ModelConfig(
        vocab_size=_vocabulary_size(reader, arch, source),
        dim=dim,
        n_layers=int(key("block_count")),
        n_heads=n_heads,
        n_kv_heads=int(key("attention.head_count_kv", n_heads)),
        ffn_dim=int(key("feed_forward_length")),
        max_seq_len=int(key("context_length")),
        rope_theta=_f32(key("rope.freq_base", 10000.0)),
        norm_eps=_f32(key("attention.layer_norm_rms_epsilon", 1e-5)),
        qkv_bias="blk.0.attn_q.bias" in names,
        tie_embeddings="output.weight" not in names,
        arch=arch,
        head_dim_override=head_dim if head_dim != dim // n_heads else None,
        tokenizer=str(tokenizer) if tokenizer is not None else None,
    )


def _vocabulary_size(reader: gguf.GGUFReader, arch: str, source: str) -> int:
    """``<arch>.vocab_size``, else the embedded vocabulary's length (read only then: tens of thousands of
    strings, which the tokenizer reads again)."""
    size = field(reader, f"{arch}.vocab_size")
    if size is not None:
        return int(size)
    tokens = field(reader, "tokenizer.ggml.tokens")
    if not isinstance(tokens, list):
        raise ModelFileError(source, f"GGUF header has no {arch}.vocab_size")
    return len(tokens)


def _f32(value: object) -> float:
    """A float32 header value as the decimal it was written from (1e-06, not 9.99999997e-07)."""
    return float(str(np.float32(value)))


def _dequantized(t: gguf.ReaderTensor, source: str) -> np.ndarray:
    try:
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
    except NotImplementedError:
        raise ModelFileError(source, f"tensor {t.name} has unsupported type {t.tensor_type.name}") from None
    return arr.reshape(tuple(int(n) for n in reversed(t.shape)))  # GGUF lists dims innermost first


def _parameter_name(gguf_name: str) -> tuple[str, str | None]:
    """(Hugging Face name, the layer-local part or None for a global tensor)."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name], None
    _, idx, local = gguf_name.split(".", 2) if gguf_name.startswith("blk.") else ("", "", "")
    if local not in _LAYER_NAMES:
        return "", None
    return f"model.layers.{idx}.{_LAYER_NAMES[local]}", _LAYER_NAMES[local]


def load_gguf(path: str | Path, dtype: torch.dtype = torch.float32) -> tuple[Transformer, Tokenizer]:
    """The torch model and tokenizer of a GGUF file (weights dequantized to ``dtype``)."""
    path = Path(path)
    source = str(path)
    reader = open_gguf(path)
    cfg = gguf_config(reader, source)
    model = Transformer(cfg)
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for t in reader.tensors:
        name, local = _parameter_name(t.name)
        if name not in expected:
            raise ModelFileError(source, f"unexpected tensor {t.name}")
        arr = _dequantized(t, source)
        heads = rotary_heads(local or "", cfg.n_heads, cfg.n_kv_heads)
        if cfg.arch == "llama" and heads:
            arr = split_rotary(arr, heads)
        if tuple(arr.shape) != tuple(expected[name].shape):
            raise ModelFileError(
                source, f"tensor {t.name} has shape {arr.shape}, the header says {tuple(expected[name].shape)}"
            )
        state[name] = torch.from_numpy(np.array(arr, dtype=np.float32))  # a copy: the file is mapped read-only
    required = set(expected) - ({"lm_head.weight"} if cfg.tie_embeddings else set())
    missing = sorted(required - set(state))
    if missing:
        raise ModelFileError(source, f"missing tensors for {missing[:3]}")
    model.load_state_dict(state, strict=False)
    return model.to(dtype).eval(), gguf_tokenizer(reader, cfg, source)
