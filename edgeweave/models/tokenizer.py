"""Byte-level tokenizer and chat template shared by every weave-home size.

Ids 0..7 are special tokens, ids 8..263 are the 256 byte values.  Any UTF-8
text round-trips exactly; user text is never parsed for special tokens (a
user typing ``<|end|>`` gets bytes, so prompts cannot forge turn markers).
The same vocabulary is embedded in GGUF exports (tokens of type BYTE with
tokenizer model "llama", no space prefix) so llama.cpp detokenizes alike.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


class Tokenizer(Protocol):
    """What backends need from a tokenizer (byte, Hugging Face or llama.cpp's own)."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def stop_ids(self) -> frozenset[int]: ...

    def encode(self, text: str, add_bos: bool = False) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def token_bytes(self, token_id: int) -> bytes: ...  # one token's bytes (logprobs report them)

    def render_chat(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> list[int]: ...

    def stream_decoder(self) -> TextStream: ...


def byte_level_spelling() -> list[str]:
    """GPT-2's reversible byte -> printable character table: byte-level BPE vocabularies (GPT-2,
    Llama 3, Qwen2, our GGUFs) spell each token's bytes with it."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    spelling, extra = {}, 0
    for b in range(256):
        if b in printable:
            spelling[b] = chr(b)
        else:
            spelling[b] = chr(256 + extra)
            extra += 1
    return [spelling[b] for b in range(256)]


class TextStream(Protocol):
    def push(self, token_id: int) -> str: ...

    def flush(self) -> str: ...


class ByteTokenizer:
    NAME = "byte-v1"
    SPECIALS: tuple[str, ...] = (
        "<pad>",
        "<s>",
        "</s>",
        "<unk>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|end|>",
    )
    PAD, BOS, EOS, UNK, SYSTEM, USER, ASSISTANT, END = range(8)
    BYTE_OFFSET = len(SPECIALS)
    VOCAB_SIZE = BYTE_OFFSET + 256
    # its models learn the house's tools in training: a request's tools are not declared in the prompt
    # (edgeweave.serving.tool_prompt), only enforced by the grammar
    TOOLS_IN_PROMPT = False
    # Jinja chat template embedded in GGUF; render_chat() is its Python twin.
    CHAT_TEMPLATE = (
        "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )

    @property
    def vocab_size(self) -> int:
        return self.VOCAB_SIZE

    @property
    def stop_ids(self) -> frozenset[int]:
        return frozenset({self.EOS, self.END})

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        ids = [b + self.BYTE_OFFSET for b in text.encode("utf-8")]
        return [self.BOS, *ids] if add_bos else ids

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token contributes to text (specials contribute none)."""
        if not 0 <= token_id < self.VOCAB_SIZE:
            raise ValueError(f"token id {token_id} outside vocabulary of {self.VOCAB_SIZE}")
        return bytes([token_id - self.BYTE_OFFSET]) if token_id >= self.BYTE_OFFSET else b""

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def piece(self, token_id: int) -> str:
        """Printable name of a token, as stored in the GGUF vocabulary."""
        if token_id < self.BYTE_OFFSET:
            return self.SPECIALS[token_id]
        return f"<0x{token_id - self.BYTE_OFFSET:02X}>"

    def render_chat(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> list[int]:
        role_id = {"system": self.SYSTEM, "user": self.USER, "assistant": self.ASSISTANT}
        ids = [self.BOS]
        for m in messages:
            ids += [role_id[m.role], *self.encode(m.content), self.END]
        if add_generation_prompt:
            ids.append(self.ASSISTANT)
        return ids

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self)


class StreamDecoder:
    """Turns a byte-token stream into text pieces without splitting UTF-8 characters."""

    def __init__(self, tokenizer: ByteTokenizer) -> None:
        self._tok = tokenizer
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self._dec.decode(self._tok.token_bytes(token_id))

    def flush(self) -> str:
        return self._dec.decode(b"", final=True)


class IncrementalDetokenizer:
    """Text pieces from any tokenizer's ``decode``: decodes all ids so far and
    emits the new suffix, holding text back while it ends mid-character.
    Quadratic in the answer length, which is fine for chat-sized answers."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._emitted = 0

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        text = self._decode(self._ids)
        if text.endswith("\ufffd"):
            return ""
        piece = text[self._emitted :]
        self._emitted = len(text)
        return piece

    def flush(self) -> str:
        return self._decode(self._ids)[self._emitted :]
