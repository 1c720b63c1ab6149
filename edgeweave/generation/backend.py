"""The device inference backend interface.

A backend only has to load a model and turn token ids into logits: :meth:`Backend.forward` for
one sequence, :meth:`Backend.forward_rows` for one step of several sequences (a runtime that
batches overrides it and sets ``slots > 1``).  Sampling, stop conditions, resuming from a token
prefix (what DiSCo's token-level migration sends), the prompt cache (the longest cached prefix is
not evaluated again) and the measured statistics are implemented once, in the generation loop
(:mod:`edgeweave.generation.batching`) and the per-answer state machine
(:mod:`edgeweave.generation.answer`), so every runtime behaves the same way and the numbers are
comparable.  Log-probabilities, when a request asks for them, come from the same step logits the
sampler reads (:mod:`edgeweave.generation.logprobs`), so a runtime needs nothing more.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np

from edgeweave.errors import UsageError
from edgeweave.generation.answer import Answer, GenerationResult, GenerationStats, TokenEvent, peak_rss_mb
from edgeweave.generation.batching import BatchLoop, BatchRow
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.tokenizer import Tokenizer

__all__ = ["Backend", "BatchRow", "GenerationResult", "GenerationStats", "TokenEvent", "peak_rss_mb"]


class Backend(ABC):
    """A loaded model on one runtime.  Not thread-safe: call it from one thread."""

    name: str = "abstract"
    slots: int = 1  # sequences the runtime's KV cache holds at once (batched decoding when > 1)

    def __init__(self, tokenizer: Tokenizer, context_length: int) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.last_stats = GenerationStats()
        self._batch_loop: BatchLoop | None = None

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
    @property
    def batch(self) -> BatchLoop:
        """This backend's generation loop and prompt cache (made on first use, once ``slots`` is set)."""
        if self._batch_loop is None:
            self._batch_loop = BatchLoop(self)
        return self._batch_loop

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits for every position of a fresh sequence ``ids`` in slot 0: [len(ids), vocab] float32."""
        self.batch.cache.forget(0)
        return self.forward(ids, 0, all_logits=True)

    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return self.tokenizer.encode(text, add_bos=add_bos)

    def check_ids(self, ids: Sequence[int], what: str) -> None:
        vocab = self.tokenizer.vocab_size
        bad = next((i for i in ids if not 0 <= int(i) < vocab), None)
        if bad is not None:
            raise UsageError(what, f"token id {bad} outside vocabulary of {vocab}")

    def answer(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams | None = None,
        resume_tokens: Sequence[int] = (),
        cancel: threading.Event | None = None,
        generate: bool = True,
    ) -> Answer:
        """A checked answer to ``prompt_ids`` + ``resume_tokens`` (tokens an earlier endpoint
        already produced), for :attr:`batch` to run; ``generate=False``: prefill only."""
        if not prompt_ids:
            raise UsageError("prompt", "must contain at least one token")
        self.check_ids(prompt_ids, "prompt")
        self.check_ids(resume_tokens, "resume_tokens")
        context = [*prompt_ids, *resume_tokens]
        if len(context) >= self.context_length:
            raise UsageError("prompt", f"{len(context)} tokens do not fit the context of {self.context_length}")
        return Answer(
            context, params or SamplingParams(), self.tokenizer, self.context_length, cancel, generate, resume_tokens
        )

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams | None = None,
        resume_tokens: Sequence[int] = (),
    ) -> Iterator[TokenEvent]:
        """Generate after ``prompt_ids`` + ``resume_tokens``; yields only the new tokens.  The
        batched loop with this one answer (call it while no other thread drives :attr:`batch`)."""
        answer = self.answer(prompt_ids, params, resume_tokens)
        yield from self._run_alone(answer)

    def prefill(self, prompt_ids: Sequence[int], resume_tokens: Sequence[int] = ()) -> GenerationStats:
        """Evaluate a context into the prompt cache, generating nothing."""
        answer = self.answer(prompt_ids, resume_tokens=resume_tokens, generate=False)
        for _ in self._run_alone(answer):
            pass
        return answer.stats

    def _run_alone(self, answer: Answer) -> Iterator[TokenEvent]:
        self.last_stats = answer.stats
        loop = self.batch
        if not loop.idle:  # another caller's answers would be stepped here and their tokens lost
            raise RuntimeError(f"{self.name}: its generation loop is busy with other answers")
        loop.submit(answer)
        try:
            while True:
                step = loop.step()
                yield from (event for a, event in step.events if a is answer)
                if answer in step.ended:
                    if answer.error is not None:
                        raise answer.error
                    return
        finally:
            loop.remove(answer)  # a consumer that stops early frees the slot

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
