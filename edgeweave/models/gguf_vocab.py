"""The tokenizer a GGUF file embeds, rebuilt for the ``tokenizers`` library.

A byte-level BPE vocabulary (``tokenizer.ggml.model = gpt2``: GPT-2, SmolLM,
Llama 3, Qwen2) is its tokens, merges and token types; what splits text into
words before the merges is not stored, only named (``tokenizer.ggml.pre``), so
each supported name maps to llama.cpp's own regular expressions for it
(``llama-vocab.cpp``).  CONTROL tokens become special tokens, the chat
template and BOS/EOS come from the header.  A weave-home GGUF names the byte
tokenizer (``edgeweave.tokenizer``) and gets it back.  The tests check the
ids against llama.cpp's tokenizer on the same file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gguf

from edgeweave.errors import ModelFileError
from edgeweave.models.config import ModelConfig
from edgeweave.models.gguf_layout import header_field as field
from edgeweave.models.hf_tokenizer import HFTokenizer
from edgeweave.models.tokenizer import ByteTokenizer, Tokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer as RustTokenizer

_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# tokenizer.ggml.pre -> (regexes applied in turn, whether whole words in the vocabulary skip the merges)
PRE_TOKENIZERS: dict[str, tuple[tuple[str, ...], bool]] = {
    "default": ((_GPT2,), False),
    "gpt2": ((_GPT2,), False),
    "smollm": ((r"\p{N}", _GPT2), False),
    "starcoder": ((r"\p{N}", _GPT2), False),
    "refact": ((r"\p{N}", _GPT2), False),
    "llama-bpe": ((_LLAMA3,), True),
    "llama3": ((_LLAMA3,), True),
    "qwen2": ((_QWEN2,), False),
}


def gguf_tokenizer(reader: gguf.GGUFReader, cfg: ModelConfig, source: str) -> Tokenizer:
    if cfg.tokenizer == ByteTokenizer.NAME:
        return ByteTokenizer()
    model, pre = field(reader, "tokenizer.ggml.model"), field(reader, "tokenizer.ggml.pre") or "default"
    if model != "gpt2":
        raise ModelFileError(source, f"unsupported GGUF tokenizer model {model!r} (supported: gpt2, byte-level BPE)")
    if pre not in PRE_TOKENIZERS:
        raise ModelFileError(source, f"unsupported tokenizer.ggml.pre {pre!r} (supported: {', '.join(PRE_TOKENIZERS)})")
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = field(reader, "tokenizer.ggml.merges") or []
    if not isinstance(tokens, list) or not isinstance(types, list) or len(types) != len(tokens):
        raise ModelFileError(source, "GGUF vocabulary is missing or its token types do not match it")
    return HFTokenizer(
        _rust_tokenizer(tokens, types, merges, *PRE_TOKENIZERS[pre]),
        cfg.vocab_size,
        bos=_token(reader, tokens, "bos"),
        eos=_token(reader, tokens, "eos"),
        template=field(reader, "tokenizer.chat_template"),
    )


def _token(reader: gguf.GGUFReader, tokens: list[str], which: str) -> str:
    token_id = field(reader, f"tokenizer.ggml.{which}_token_id")
    return tokens[int(token_id)] if token_id is not None and 0 <= int(token_id) < len(tokens) else ""


def _rust_tokenizer(
    tokens: list[str], types: list[int], merges: list[str], regexes: tuple[str, ...], ignore_merges: bool
) -> RustTokenizer:
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as RustTokenizer

    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = RustTokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=ignore_merges))
    splits = [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes]
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [*splits, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    control = [t for t, ty in zip(tokens, types, strict=True) if ty == gguf.TokenType.CONTROL]
    user = [t for t, ty in zip(tokens, types, strict=True) if ty == gguf.TokenType.USER_DEFINED]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])
    return tok
