"""Tokenizer metadata for GGUF files.

- edgeweave byte tokenizer (``edgeweave_tokenizer: byte-v1`` in config.json):
  model "gpt2" with the 8 specials as CONTROL tokens, then the 256 bytes in
  GPT-2's byte-to-unicode spelling and no merges, so llama.cpp's own
  tokenizer maps text to exactly our ids (the SPM "llama" model would turn
  spaces into U+2581 first).  No automatic BOS: the chat template adds it.
- Hugging Face ``tokenizer.json`` with a byte-level BPE model (Llama 3, Qwen2):
  model "gpt2" with its merges; added special tokens become CONTROL tokens; the
  vocabulary is padded to the model's ``vocab_size`` with unused tokens, as
  llama.cpp's converter does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf

from edgeweave.errors import ModelFileError
from edgeweave.models.config import ModelConfig
from edgeweave.models.tokenizer import ByteTokenizer, byte_level_spelling

PRE_TOKENIZER = {"qwen2": "qwen2", "llama": "llama-bpe"}


def write_tokenizer(w: gguf.GGUFWriter, cfg: ModelConfig, checkpoint: Path) -> None:
    if cfg.tokenizer == ByteTokenizer.NAME:
        _write_byte_tokenizer(w, cfg)
    else:
        _write_hf_bpe(w, cfg, checkpoint)


def _write_byte_tokenizer(w: gguf.GGUFWriter, cfg: ModelConfig) -> None:
    tok = ByteTokenizer()
    if cfg.vocab_size != tok.vocab_size:
        raise ModelFileError("config.json", f"vocab_size {cfg.vocab_size} != byte tokenizer's {tok.vocab_size}")
    spelling = byte_level_spelling()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([*tok.SPECIALS, *spelling])
    w.add_token_types([gguf.TokenType.CONTROL] * tok.BYTE_OFFSET + [gguf.TokenType.NORMAL] * 256)
    # llama.cpp refuses a BPE vocabulary without merges; this pair of specials never
    # occurs inside pre-tokenized text, so tokenization stays one token per byte
    w.add_token_merges([f"{tok.SPECIALS[0]} {tok.SPECIALS[0]}"])
    w.add_bos_token_id(tok.BOS)
    w.add_eos_token_id(tok.EOS)
    w.add_eot_token_id(tok.END)
    w.add_unk_token_id(tok.UNK)
    w.add_pad_token_id(tok.PAD)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    w.add_chat_template(tok.CHAT_TEMPLATE)
    w.add_string("edgeweave.tokenizer", tok.NAME)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(str(path), f"cannot parse JSON ({e})") from None


def _write_hf_bpe(w: gguf.GGUFWriter, cfg: ModelConfig, checkpoint: Path) -> None:
    path = checkpoint / "tokenizer.json"
    if not path.is_file():
        raise ModelFileError(str(checkpoint), "no tokenizer.json (needed to embed the tokenizer in GGUF)")
    data = _read_json(path)
    model = data.get("model", {})
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ModelFileError(str(path), f"unsupported tokenizer model {model.get('type')!r} (need byte-level BPE)")
    vocab: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    special: set[int] = set()
    for added in data.get("added_tokens", []):
        vocab[int(added["id"])] = added["content"]
        if added.get("special"):
            special.add(int(added["id"]))
    size = max(cfg.vocab_size, max(vocab) + 1)
    tokens, types = [], []
    for i in range(size):
        if i in vocab:
            tokens.append(vocab[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(PRE_TOKENIZER[cfg.arch])
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    by_text = {t: i for i, t in vocab.items()}
    tok_cfg_path = checkpoint / "tokenizer_config.json"
    tok_cfg = _read_json(tok_cfg_path) if tok_cfg_path.is_file() else {}
    for key, add in (
        ("bos_token", w.add_bos_token_id),
        ("eos_token", w.add_eos_token_id),
        ("pad_token", w.add_pad_token_id),
    ):
        value = tok_cfg.get(key)
        text = value.get("content") if isinstance(value, dict) else value
        if text in by_text:
            add(by_text[text])
    w.add_add_bos_token(bool(tok_cfg.get("add_bos_token", False)))
    if isinstance(tok_cfg.get("chat_template"), str):
        w.add_chat_template(tok_cfg["chat_template"])
