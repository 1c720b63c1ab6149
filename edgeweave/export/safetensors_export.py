"""Export to a Hugging Face checkpoint directory: ``config.json``, ``model.safetensors`` and the
tokenizer files a Hugging Face consumer (``transformers``' ``AutoTokenizer``, the ``tokenizers``
library) loads.

A real Hugging Face checkpoint's tokenizer files are copied as they are.  A weave-home model's
byte tokenizer has no such file, so one is written: a ``tokenizer.json`` whose vocabulary is the
byte tokenizer's (ids 0..7 the special tokens, ids 8..263 the bytes ``<0x00>``..``<0xFF>``, a BPE
model without merges that falls back to bytes) and a ``tokenizer_config.json`` with its special
tokens and chat template, so any text encodes to the same ids as :class:`ByteTokenizer`.  Unlike
edgeweave (which never parses user text for special tokens), Hugging Face tokenizers match a
special token's text in the input; edgeweave itself reads the tokenizer from ``config.json``'s
``edgeweave_tokenizer`` key.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from edgeweave.fileio import atomic_output
from edgeweave.models.checkpoint import save_checkpoint
from edgeweave.models.llama import Transformer
from edgeweave.models.tokenizer import ByteTokenizer

# What a Hugging Face checkpoint may carry besides config and weights (each copied if present).
HF_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
)


def export_safetensors(model: Transformer, checkpoint: Path, out: Path, dtype: torch.dtype) -> Path:
    save_checkpoint(model, out, dtype=dtype)
    if model.config.tokenizer == ByteTokenizer.NAME:
        _write_byte_tokenizer(out, model.config.max_seq_len)
    elif checkpoint.resolve() != out.resolve():
        for name in HF_TOKENIZER_FILES:
            if (checkpoint / name).is_file():
                with atomic_output(out / name) as tmp:
                    shutil.copyfile(checkpoint / name, tmp)
    return out


def byte_tokenizer_json() -> str:
    """:class:`ByteTokenizer` as a ``tokenizers`` library file."""
    from tokenizers import AddedToken, Tokenizer, decoders
    from tokenizers.models import BPE

    bt = ByteTokenizer()
    vocab = {bt.piece(i): i for i in range(bt.VOCAB_SIZE)}
    tok = Tokenizer(BPE(vocab=vocab, merges=[], unk_token=bt.SPECIALS[bt.UNK], byte_fallback=True))
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in bt.SPECIALS])
    return tok.to_str(pretty=True)


def _write_byte_tokenizer(out: Path, max_seq_len: int) -> None:
    bt = ByteTokenizer
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bt.SPECIALS[bt.BOS],
        "eos_token": bt.SPECIALS[bt.EOS],
        "unk_token": bt.SPECIALS[bt.UNK],
        "pad_token": bt.SPECIALS[bt.PAD],
        "add_bos_token": False,
        "model_max_length": max_seq_len,
        "chat_template": bt.CHAT_TEMPLATE,
    }
    # a chat answer ends at <|end|>: generation stops at either of the byte tokenizer's stop ids
    generation = {"bos_token_id": bt.BOS, "eos_token_id": sorted(ByteTokenizer().stop_ids), "pad_token_id": bt.PAD}
    files = {
        "tokenizer.json": byte_tokenizer_json(),
        "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
        "generation_config.json": json.dumps(generation, indent=2) + "\n",
    }
    for name, text in files.items():
        with atomic_output(out / name) as tmp:
            tmp.write_text(text)
