"""The device inference backend interface and its shared generation loop.

A backend only has to load a model and turn token ids into logits
(:meth:`Backend.prefill` for a prompt, :meth:`Backend.decode` for one more
token, :meth:`Backend.logits` for parity checks).  Sampling, stop conditions,
resuming from a token prefix (what DiSCo's token-level migration sends) and
the measured statistics are implemented once here, so every runtime behaves
the same way and the numbers are comparable.  Log-probabilities, when a request
asks for them, come from the same step logits the sampler reads
(:mod:`edgeweave.generation.logprobs`), so a runtime needs nothing more.
"""

from __future__ import annotations

import resource
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgeweave.errors import UsageError
from edgeweave.generation.logprobs import TokenLogprob, token_logprob
from edgeweave.generation.sampling import Sampler, SamplingParams
from edgeweave.generation.stopping import Continuation, FinishReason
from edgeweave.models.tokenizer import Tokenizer


@dataclass(frozen=True)
class TokenEvent:
    """One generated token as it streams out."""

    index: int  # 0-based among the newly generated tokens
    token_id: int
    text: str  # text this token makes visible (empty mid-character or while it may begin a stop string)
    elapsed_s: float  # since the request started
    finish_reason: FinishReason | None = None  # set on the last event of a stream
    logprob: TokenLogprob | None = None  # when the request's sampling asked for logprobs


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    ttft_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.prefill_s if self.prefill_s else 0.0

    @property
    def decode_tok_s(self) -> float:
        # the first token comes from the prefill logits; decode steps produce the rest
        steps = max(0, self.generated_tokens - 1)
        return steps / self.decode_s if self.decode_s else 0.0


@dataclass
class GenerationResult:
    token_ids: list[int]
    text: str
    finish_reason: FinishReason
    stats: GenerationStats = field(default_factory=GenerationStats)


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark in MiB.

    Linux: ``VmHWM`` of this address space.  (``ru_maxrss`` would be wrong for a
    child process: Linux carries the parent's peak across fork and exec.)"""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 2**20 if sys.platform == "darwin" else 2**10  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


@dataclass(frozen=True)
class BatchRow:
    """One sequence's share of a batched evaluation step."""

    slot: int  # which of the runtime's KV-cache sequences (0 .. Backend.slots - 1)
    ids: Sequence[int]
    start: int  # position of ids[0]; that slot's cache from here on is overwritten


class Backend(ABC):
    """A loaded model on one runtime.  Not thread-safe: call it from one thread."""

    name: str = "abstract"
    slots: int = 1  # sequences the runtime's KV cache holds at once (batched decoding when > 1)

    def __init__(self, tokenizer: Tokenizer, context_length: int) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.last_stats = GenerationStats()
        self._pos = 0  # tokens in the runtime's KV cache for the current sequence

    # --- what each runtime implements ------------------------------------------
    @abstractmethod
    def forward(self, ids: Sequence[int], start: int, all_logits: bool) -> np.ndarray:
        """Evaluate ``ids`` at positions ``start..``, overwriting the KV cache from
        ``start`` on; return logits [len(ids) if all_logits else 1, vocab] (a copy)."""

    def forward_rows(self, rows: Sequence[BatchRow]) -> list[np.ndarray]:
        """One evaluation step for several sequences, each in its own slot: every
        row's last-position logits [vocab].  A runtime that batches overrides this;
        the default evaluates the rows one by one in slot 0 (``slots == 1``)."""
        if any(row.slot >= self.slots for row in rows):
            raise ValueError(f"slot out of range: this backend holds {self.slots} sequence(s)")
        return [self.forward(row.ids, row.start, all_logits=False)[-1] for row in rows]

    # --- shared mechanism --------------------------------------------------------
    def prefill(self, ids: Sequence[int]) -> np.ndarray:
        """Start a fresh sequence with ``ids``; return the last position's logits [vocab]."""
        self._pos = len(ids)
        return self.forward(ids, 0, all_logits=False)[-1]

    def decode(self, token_id: int) -> np.ndarray:
        """Append one token to the current sequence; return its logits [vocab]."""
        out = self.forward([token_id], self._pos, all_logits=False)[-1]
        self._pos += 1
        return out

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits for every position of a fresh sequence ``ids``: [len(ids), vocab] float32."""
        self._pos = len(ids)
        return self.forward(ids, 0, all_logits=True)

    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return self.tokenizer.encode(text, add_bos=add_bos)

    def check_ids(self, ids: Sequence[int], what: str) -> None:
        vocab = self.tokenizer.vocab_size
        bad = next((i for i in ids if not 0 <= int(i) < vocab), None)
        if bad is not None:
            raise UsageError(what, f"token id {bad} outside vocabulary of {vocab}")

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams | None = None,
        resume_tokens: Sequence[int] = (),
    ) -> Iterator[TokenEvent]:
        """Generate after ``prompt_ids`` + ``resume_tokens`` (tokens an earlier
        endpoint already produced); yields only the new tokens."""
        params = params or SamplingParams()
        if not prompt_ids:
            raise UsageError("prompt", "must contain at least one token")
        self.check_ids(prompt_ids, "prompt")
        self.check_ids(resume_tokens, "resume_tokens")
        context = [*prompt_ids, *resume_tokens]
        if len(context) >= self.context_length:
            raise UsageError("prompt", f"{len(context)} tokens do not fit the context of {self.context_length}")
        stats = GenerationStats(prompt_tokens=len(context))
        self.last_stats = stats
        sampler = Sampler(params)
        output = Continuation(self.tokenizer, params, self.context_length, len(context))
        start = time.perf_counter()
        logits = self.prefill(context)
        stats.prefill_s = time.perf_counter() - start
        top = params.logprobs
        for index in range(params.max_tokens):
            token = sampler(logits)
            logprob = None if top is None else token_logprob(logits, token, top, self.tokenizer.token_bytes)
            stats.generated_tokens = index + 1
            piece, finish = output.accept(token)
            now = time.perf_counter() - start
            if index == 0:
                stats.ttft_s = now
            if finish:
                stats.peak_rss_mb = peak_rss_mb()
            yield TokenEvent(index, token, piece, now, finish, logprob)
            if finish:
                return
            t0 = time.perf_counter()
            logits = self.decode(token)
            stats.decode_s += time.perf_counter() - t0

    def generate(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams | None = None,
        resume_tokens: Sequence[int] = (),
    ) -> GenerationResult:
        events = list(self.stream(prompt_ids, params, resume_tokens))
        text = "".join(ev.text for ev in events)
        return GenerationResult(
            [ev.token_id for ev in events], text, events[-1].finish_reason or "length", self.last_stats
        )

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release runtime resources (default: nothing to release)."""
