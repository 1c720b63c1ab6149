"""llama.cpp backend (llama-cpp-python) for GGUF files.

For GGUFs exported by edgeweave with the byte tokenizer, edgeweave tokenizes;
for any other GGUF (a real model), llama.cpp's own tokenizer and the file's
chat template are used.  Sampling is always edgeweave's; llama.cpp evaluates.  We call
``llama_decode`` through the binding's context and batch objects so that we
can ask for the logits of exactly the rows we need: the last one while
generating, all of them for parity checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import gguf
import numpy as np

from edgeweave.errors import ModelFileError, UsageError
from edgeweave.generation.backend import Backend
from edgeweave.models.hf_tokenizer import render_template
from edgeweave.models.tokenizer import ByteTokenizer, ChatMessage, IncrementalDetokenizer, Tokenizer

if TYPE_CHECKING:
    from llama_cpp import Llama

SUPPORTED_GGUF_ARCHS = ("llama", "qwen2")


def gguf_header(path: Path) -> tuple[str, str | None, int]:
    """(general.architecture, edgeweave.tokenizer, context length) from the GGUF header."""
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError, KeyError) as e:
        raise ModelFileError(str(path), f"corrupt or not a GGUF file ({e})") from None

    def field(key: str) -> str | None:
        f = reader.get_field(key)
        return None if f is None else f.contents()

    arch = field("general.architecture")
    if arch is None:
        raise ModelFileError(str(path), "GGUF has no general.architecture")
    return arch, field("edgeweave.tokenizer"), int(field(f"{arch}.context_length") or 0)


class LlamaCppTokenizer:
    """llama.cpp's tokenizer and the GGUF's chat template, for real models."""

    def __init__(self, llm: Llama) -> None:
        self._llm = llm
        self._template = llm.metadata.get("tokenizer.chat_template")
        eot = llm.metadata.get("tokenizer.ggml.eot_token_id")
        self._stop_ids = frozenset({llm.token_eos(), *([int(eot)] if eot is not None else [])})

    def _text(self, token_id: int) -> str:
        return self._llm.detokenize([token_id], special=True).decode("utf-8", errors="replace")

    @property
    def vocab_size(self) -> int:
        return self._llm.n_vocab()

    @property
    def stop_ids(self) -> frozenset[int]:
        return self._stop_ids

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        return self._llm.tokenize(text.encode(), add_bos=add_bos, special=False)

    def decode(self, ids: Iterable[int]) -> str:
        return self._llm.detokenize(list(ids)).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The token's piece as llama.cpp stores it (raw bytes: a byte token may be part of a character)."""
        return self._llm.detokenize([token_id])

    def render_chat(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> list[int]:
        if not self._template:
            raise UsageError("messages", "this GGUF has no tokenizer.chat_template")
        bos, eos = self._text(self._llm.token_bos()), self._text(self._llm.token_eos())
        text = render_template(self._template, messages, bos, eos, add_generation_prompt)
        return self._llm.tokenize(text.encode(), add_bos=False, special=True)

    def stream_decoder(self) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(self.decode)


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(self, path: str | Path, n_threads: int | None = None) -> None:
        import llama_cpp

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(str(path), "no such file")
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ModelFileError(str(path), "not a GGUF file (bad magic)")
        arch, tokenizer, context_length = gguf_header(path)
        if arch not in SUPPORTED_GGUF_ARCHS:
            raise ModelFileError(
                str(path), f"unsupported GGUF architecture {arch!r} (supported: {', '.join(SUPPORTED_GGUF_ARCHS)})"
            )
        threads = n_threads or max(1, min(4, os.cpu_count() or 1))
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=context_length,
                n_batch=4096,
                n_ubatch=512,
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(str(path), f"llama.cpp could not load it ({e})") from None
        self._n_vocab = self._llm.n_vocab()
        # llama.cpp's own tokenizer: used for real models, kept to check the embedded byte vocabulary
        self.native_tokenizer = LlamaCppTokenizer(self._llm)
        tok: Tokenizer = ByteTokenizer() if tokenizer == ByteTokenizer.NAME else self.native_tokenizer
        # llama.cpp rounds n_ctx up (to a multiple of 256); never go past the trained context
        super().__init__(tok, min(self._llm.n_ctx(), context_length or self._llm.n_ctx()))

    def forward(self, ids: Sequence[int], start: int, all_logits: bool) -> np.ndarray:
        llm = self._llm
        llm._ctx.kv_cache_seq_rm(-1, start, -1)
        llm._batch.set_batch(batch=list(ids), n_past=start, logits_all=all_logits)
        llm._ctx.decode(llm._batch)
        rows = len(ids) if all_logits else 1
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(rows, self._n_vocab)).copy()

    def close(self) -> None:
        self._llm.close()


def load(path: Path, threads: int | None) -> LlamaCppBackend:
    """The ``llamacpp`` entry point of :func:`edgeweave.generation.backends.load_backend`."""
    from edgeweave.export.cache import runtime_file

    return LlamaCppBackend(runtime_file(path, "gguf"), n_threads=threads)
