"""Tokenizers for real models: Hugging Face ``tokenizer.json`` and chat templates.

A weave-home checkpoint names the byte tokenizer in its config.json; any other
checkpoint directory brings ``tokenizer.json`` (run by the ``tokenizers``
library) and ``tokenizer_config.json`` (special tokens and the Jinja chat
template, rendered in a sandbox as transformers does).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from edgeweave.errors import ModelFileError, UsageError
from edgeweave.models.config import ModelConfig
from edgeweave.models.tokenizer import (
    ByteTokenizer,
    ChatMessage,
    IncrementalDetokenizer,
    Tokenizer,
    byte_level_spelling,
)

if TYPE_CHECKING:
    from tokenizers import Tokenizer as RustTokenizer


def render_template(
    template: str, messages: Sequence[ChatMessage], bos: str, eos: str, add_generation_prompt: bool
) -> str:
    def raise_exception(message: str) -> None:
        raise UsageError("messages", message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=add_generation_prompt,
            bos_token=bos,
            eos_token=eos,
        )
    except TemplateError as e:
        raise UsageError("messages", f"chat template failed: {e}") from None


def _token_text(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


class HFTokenizer:
    """A ``tokenizers`` tokenizer with its special tokens and chat template (from a checkpoint
    directory, :meth:`from_dir`, or rebuilt from a GGUF's vocabulary, :mod:`edgeweave.models.gguf_vocab`)."""

    def __init__(
        self, tok: RustTokenizer, vocab_size: int, bos: str = "", eos: str = "", template: str | None = None
    ) -> None:
        from tokenizers import Tokenizer, decoders

        self._tok = tok  # templates: special tokens written as text map to their ids
        # user text never does (as the byte tokenizer and llama.cpp): a copy that spells them out
        self._text_tok = Tokenizer.from_str(tok.to_str())
        self._text_tok.encode_special_tokens = True
        self._bos, self._eos, self._template = bos, eos, template
        self._vocab_size = vocab_size
        stops = {tok.token_to_id(t) for t in (eos, "<|im_end|>", "<|eot_id|>", "<|endoftext|>") if t}
        self._stop_ids = frozenset(i for i in stops if i is not None)
        self._specials = frozenset(i for i, t in tok.get_added_tokens_decoder().items() if t.special)
        byte_level = isinstance(tok.decoder, decoders.ByteLevel)
        self._byte_of = {c: b for b, c in enumerate(byte_level_spelling())} if byte_level else None

    @classmethod
    def from_dir(cls, directory: Path, vocab_size: int) -> HFTokenizer:
        from tokenizers import Tokenizer

        path = directory / "tokenizer.json"
        if not path.is_file():
            raise ModelFileError(str(directory), "no tokenizer.json (and config.json names no edgeweave tokenizer)")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust library raises a bare Exception on bad files
            raise ModelFileError(str(path), f"cannot load tokenizer ({e})") from None
        cfg_path = directory / "tokenizer_config.json"
        cfg: dict[str, Any] = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        template = cfg.get("chat_template") if isinstance(cfg.get("chat_template"), str) else None
        bos, eos = _token_text(cfg.get("bos_token")) or "", _token_text(cfg.get("eos_token")) or ""
        return cls(tok, vocab_size, bos, eos, template)

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def stop_ids(self) -> frozenset[int]:
        return self._stop_ids

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = self._text_tok.encode(text, add_special_tokens=False).ids
        bos = self._tok.token_to_id(self._bos) if self._bos else None
        return [bos, *ids] if add_bos and bos is not None else ids

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token contributes to text: none for special tokens and the padding past the
        tokenizer's vocabulary (as :meth:`decode`); a byte-level piece's own bytes, which may be part of a
        UTF-8 character (decoding that one token alone would give U+FFFD)."""
        piece = None if token_id in self._specials else self._tok.id_to_token(token_id)
        if piece is None:
            return b""
        if self._byte_of is not None and all(c in self._byte_of for c in piece):
            return bytes(self._byte_of[c] for c in piece)
        return self.decode([token_id]).encode()  # other decoders (SentencePiece): the token's text

    def render_chat(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> list[int]:
        if self._template is None:
            raise UsageError("messages", "this model's tokenizer_config.json has no chat_template")
        text = render_template(self._template, messages, self._bos, self._eos, add_generation_prompt)
        # the template writes special tokens as text; the tokenizer maps them back to their ids
        return self._tok.encode(text, add_special_tokens=False).ids

    def stream_decoder(self) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(self.decode)


def load_tokenizer(directory: Path, cfg: ModelConfig | None = None) -> Tokenizer:
    """The tokenizer of a checkpoint directory (``cfg``: its config, read from config.json if not given)."""
    cfg = cfg or ModelConfig.from_hf_dir(directory)
    if cfg.tokenizer == ByteTokenizer.NAME:
        return ByteTokenizer()
    return HFTokenizer.from_dir(directory, cfg.vocab_size)
