"""One answer's state machine, from its admission to its last token, on any runtime.

An :class:`Answer` turns each step's logits into the next :class:`TokenEvent`: it samples (its own
:class:`~edgeweave.generation.sampling.Sampler` and RNG), computes the log-probabilities when asked
(:mod:`edgeweave.generation.logprobs`), applies every stop condition
(:class:`~edgeweave.generation.stopping.Continuation`) and keeps its measured statistics.  The one
generation loop (:mod:`edgeweave.generation.batching`) drives one answer or many through the same
object, so a batched answer samples, stops, resumes and reports exactly as a lone one does.
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edgeweave.generation.constrained import sampler_for
from edgeweave.generation.logprobs import TokenLogprob, token_logprob
from edgeweave.generation.sampling import Sampler, SamplingParams
from edgeweave.generation.stopping import Continuation, FinishReason

if TYPE_CHECKING:
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
    cached_tokens: int = 0  # of prompt_tokens, reused from the prompt cache (not evaluated)
    ttft_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0  # time of the steps that decoded this answer (shared with a batch's others)
    busy_s: float = 0.0  # this answer's share of the runtime's time (a step's time over its rows)
    peak_rss_mb: float = 0.0

    @property
    def prefill_tok_s(self) -> float:
        evaluated = self.prompt_tokens - self.cached_tokens
        return evaluated / self.prefill_s if self.prefill_s else 0.0

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


class Answer:
    """``context``: prompt + resume tokens, already checked against the vocabulary and context
    (``resumed``: those resume tokens, which a constrained output's grammar replays first).
    ``generate=False``: a prefill only (warm the prompt cache), which ends without a token."""

    def __init__(
        self,
        context: Sequence[int],
        params: SamplingParams,
        tokenizer: Tokenizer,
        context_length: int,
        cancel: threading.Event | None = None,
        generate: bool = True,
        resumed: Sequence[int] = (),
    ) -> None:
        self.context = list(context)
        self.params = params
        self.cancel = cancel or threading.Event()
        self.generate = generate
        self.stats = GenerationStats(prompt_tokens=len(self.context))
        self.pos = len(self.context)  # position of the next token to evaluate
        self.last_token: int | None = None  # sampled, not yet evaluated (None: prompt not prefilled yet)
        self.finish_reason: FinishReason | None = None
        self.error: BaseException | None = None
        self._sampler = sampler_for(params, tokenizer, resumed) if generate else Sampler(params)
        self._output = Continuation(tokenizer, params, context_length, len(self.context))
        self._token_bytes = tokenizer.token_bytes
        self._index = 0
        self._start = 0.0

    def begin(self) -> None:
        """Given a slot: the clock of its first-token time starts."""
        self._start = time.perf_counter()

    def emit(self, logits: np.ndarray) -> TokenEvent:
        """The next token from this step's logits (the last position's, [vocab])."""
        token = self._sampler(logits)
        top = self.params.logprobs
        logprob = None if top is None else token_logprob(logits, token, top, self._token_bytes)
        piece, finish = self._output.accept(token)
        now = time.perf_counter() - self._start
        index, self._index = self._index, self._index + 1
        self.stats.generated_tokens = self._index
        if index == 0:
            self.stats.ttft_s = now
        if finish:
            self.finish_reason = finish
            self.stats.peak_rss_mb = peak_rss_mb()
        else:
            self.last_token = token
        return TokenEvent(index, token, piece, now, finish, logprob)

    def fed(self) -> None:
        """``last_token`` went into this step's batch."""
        self.pos += 1
