"""llama.cpp backend (llama-cpp-python) for GGUF files.

For GGUFs exported by edgeweave with the byte tokenizer, edgeweave tokenizes;
for any other GGUF (a real model), llama.cpp's own tokenizer and the file's
chat template are used.  Sampling is always edgeweave's; llama.cpp evaluates.  We call
``llama_decode`` through the binding's context and batch objects so that we
can ask for the logits of exactly the rows we need: the last one while
generating, all of them for parity checks.

``slots > 1``: several sequences in one llama.cpp context (``n_seq_max`` sequences in a
unified KV cache of ``slots`` x the context, as llama.cpp's server runs its parallel
slots), and one ``llama_decode`` per generation step whose batch holds every row's tokens
tagged with its sequence id, with logits asked for each row's last token only.

``lora``: a GGUF LoRA adapter file (:mod:`edgeweave.export.gguf_lora`), loaded with
``llama_adapter_lora_init`` against the model and set on the backend's context with
``llama_set_adapters_lora`` at scale 1 (the file's alpha / rank is applied by llama.cpp), freed
with the model.
llama.cpp applies adapters per context, to every sequence in it, so an adapter served beside its
base model is its own backend: its own model load, context and KV cache (a base-model answer in
the same context would get the adapter too).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeweave.errors import ModelFileError, UsageError
from edgeweave.generation.backend import Backend, BatchRow
from edgeweave.models.gguf_layout import header_field, is_gguf, open_gguf
from edgeweave.models.hf_tokenizer import render_template
from edgeweave.models.tokenizer import ByteTokenizer, ChatMessage, IncrementalDetokenizer, Tokenizer

if TYPE_CHECKING:
    from llama_cpp import Llama

SUPPORTED_GGUF_ARCHS = ("llama", "qwen2")


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def prefer_passive_openmp(threads: int) -> bool:
    """Make llama.cpp's compute threads sleep, not spin, while they wait, when they take every core.

    llama.cpp's CPU threads are OpenMP (libgomp) threads and wait at a barrier after every
    operation of a step, spinning by default.  In a daemon the token just produced must also
    reach the event loop, the coordinator and the client: with a compute thread on every core,
    that work preempts one compute thread while its peers spin at the next barrier, and each
    token costs several time slices (measured on 2 cores under contention: 150-1,300 ms per token
    spinning against 17-95 ms with ``OMP_WAIT_POLICY=PASSIVE``).  With a core to spare (fewer
    threads than cores) the spin costs nothing and is kept.  libgomp reads the policy once, when
    it loads: call this before llama.cpp is imported (the daemon does); a policy the user set
    wins.  Returns whether the passive policy is now in force."""
    if threads < (os.cpu_count() or 1) or "llama_cpp" in sys.modules:
        return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


def gguf_header(path: Path) -> tuple[str, str | None, int]:
    """(general.architecture, edgeweave.tokenizer, context length) from the GGUF header."""
    reader = open_gguf(path)

    def field(key: str) -> str | None:
        return header_field(reader, key)  # type: ignore[return-value]

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


N_BATCH = 4096  # tokens per llama_decode call (longer steps are split)
N_UBATCH = 512
SCRATCH_CTX = 256  # the binding's own context when we make our own: its smallest


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(
        self, path: str | Path, n_threads: int | None = None, slots: int = 1, lora: Path | None = None
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(str(path), "no such file")
        if not is_gguf(path):
            raise ModelFileError(str(path), "not a GGUF file (bad magic)")
        arch, tokenizer, context_length = gguf_header(path)
        if arch not in SUPPORTED_GGUF_ARCHS:
            raise ModelFileError(
                str(path), f"unsupported GGUF architecture {arch!r} (supported: {', '.join(SUPPORTED_GGUF_ARCHS)})"
            )
        if slots < 1:
            raise UsageError("slots", f"must be at least 1, got {slots}")
        threads = n_threads or default_threads()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=context_length if slots == 1 else SCRATCH_CTX,
                n_batch=N_BATCH,
                n_ubatch=N_UBATCH,
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                verbose=False,
            )
            context_length = context_length or self._llm._model.n_ctx_train()
            self._ctx, self._batch = self._llm._ctx, self._llm._batch
            if slots > 1:
                # the binding makes one sequence's context; ours holds `slots` of them
                params = type(self._llm.context_params).from_buffer_copy(self._llm.context_params)
                params.n_ctx, params.n_seq_max, params.kv_unified = context_length * slots, slots, True
                params.n_batch, params.n_ubatch = N_BATCH, N_UBATCH
                self._ctx = _internals.LlamaContext(model=self._llm._model, params=params, verbose=False)
                self._batch = _internals.LlamaBatch(n_tokens=N_BATCH, embd=0, n_seq_max=1, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(str(path), f"llama.cpp could not load it ({e})") from None
        self._lora = None if lora is None else self._set_lora(lora)
        self.slots = slots
        self._n_vocab = self._llm.n_vocab()
        # llama.cpp's own tokenizer: used for real models, kept to check the embedded byte vocabulary
        self.native_tokenizer = LlamaCppTokenizer(self._llm)
        tok: Tokenizer = ByteTokenizer() if tokenizer == ByteTokenizer.NAME else self.native_tokenizer
        # llama.cpp rounds n_ctx up (to a multiple of 256); never go past the trained context
        super().__init__(tok, min(self._ctx.n_ctx() // slots, context_length))

    def _set_lora(self, lora: Path) -> object:
        import ctypes

        import llama_cpp

        adapter = llama_cpp.llama_adapter_lora_init(self._llm._model.model, str(lora).encode())
        if not adapter:
            raise ModelFileError(str(lora), "llama.cpp could not load this LoRA adapter for the model")
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        if llama_cpp.llama_set_adapters_lora(self._ctx.ctx, adapters, 1, (ctypes.c_float * 1)(1.0)) != 0:
            llama_cpp.llama_adapter_lora_free(adapter)
            raise ModelFileError(str(lora), "llama.cpp could not set this LoRA adapter on its context")
        return adapter

    def forward(self, ids: Sequence[int], start: int, all_logits: bool) -> np.ndarray:
        if len(ids) > N_BATCH:
            raise UsageError("prompt", f"{len(ids)} tokens in one evaluation exceed llama.cpp's batch of {N_BATCH}")
        self._ctx.kv_cache_seq_rm(0, start, -1)
        self._batch.set_batch(batch=list(ids), n_past=start, logits_all=all_logits)
        self._ctx.decode(self._batch)
        rows = len(ids) if all_logits else 1
        return np.ctypeslib.as_array(self._ctx.get_logits(), shape=(rows, self._n_vocab)).copy()

    def forward_rows(self, rows: Sequence[BatchRow]) -> list[np.ndarray]:
        """Every row in one ``llama_decode`` (several when the rows hold more than
        ``N_BATCH`` tokens), each token tagged with its row's slot as sequence id."""
        if any(not 0 <= row.slot < self.slots for row in rows):
            raise ValueError(f"slot out of range: this backend holds {self.slots} sequence(s)")
        batch, out = self._batch.batch, [np.empty(0, np.float32)] * len(rows)
        wanted: list[tuple[int, int]] = []  # (row, batch index of its last token) in this decode

        def decode(n: int) -> None:
            batch.n_tokens = n
            self._ctx.decode(self._batch)
            for r, i in wanted:
                out[r] = np.ctypeslib.as_array(self._ctx.get_logits_ith(i), shape=(self._n_vocab,)).copy()
            wanted.clear()

        n = 0
        for r, row in enumerate(rows):
            self._ctx.kv_cache_seq_rm(row.slot, row.start, -1)
            for j, token in enumerate(row.ids):
                if n == N_BATCH:
                    decode(n)
                    n = 0
                last = j == len(row.ids) - 1
                batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, row.start + j, 1, last
                batch.seq_id[n][0] = row.slot
                if last:
                    wanted.append((r, n))
                n += 1
        if n:
            decode(n)
        return out

    def close(self) -> None:
        if self._ctx is not self._llm._ctx:
            self._batch.close()
            self._ctx.close()
        self._llm.close()  # frees the adapter too (llama.cpp frees a model's adapters with it)


def load(path: Path, threads: int | None, slots: int = 1, adapter: Path | None = None) -> LlamaCppBackend:
    """The ``llamacpp`` entry point of :func:`edgeweave.generation.backends.load_backend`.
    ``adapter``: a PEFT adapter directory, exported once (cached) to a GGUF LoRA file; it needs
    the base checkpoint directory (its config shapes the export), not a bare .gguf."""
    from edgeweave.export.cache import runtime_file

    lora = None
    if adapter is not None:
        if not path.is_dir():
            raise UsageError("adapters", f"serving a LoRA adapter needs the base checkpoint directory, not {path.name}")
        from edgeweave.export.gguf_lora import cached_gguf_lora
        from edgeweave.models.config import ModelConfig

        lora = cached_gguf_lora(adapter, ModelConfig.from_hf_dir(path))
    return LlamaCppBackend(runtime_file(path, "gguf"), n_threads=threads, slots=slots, lora=lora)
