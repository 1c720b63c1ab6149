"""Stop conditions on a token stream, shared by every device backend and the
cloud engine.

A streamed answer must never show a stop string, nor the beginning of one that
later completes.  :class:`StopText` holds back only the longest tail of the
text so far that is a prefix of some stop string, so text reaches clients one
token late at most in the common case and never has to be taken back.
:class:`Continuation` applies all of a request's stop conditions (end-of-turn
ids, stop strings, max_tokens, the context's end) token by token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from edgeweave.generation.sampling import SamplingParams
    from edgeweave.models.tokenizer import Tokenizer

FinishReason = Literal["stop", "length"]


class StopText:
    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._longest = max((len(s) for s in self._stops), default=0)
        self._text = ""
        self._released = 0
        self.stopped = False

    def push(self, piece: str) -> str:
        """Add generated text; return the part now safe to show."""
        if self.stopped or not piece:
            return ""
        self._text += piece
        scan_from = max(0, self._released - self._longest)
        hits = [i for i in (self._text.find(s, scan_from) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            return self._release(min(hits))
        return self._release(len(self._text) - self._held_tail())

    def finish(self, tail: str = "") -> str:
        """The stream ended: add ``tail`` and release everything still held."""
        out = self.push(tail)
        return out if self.stopped else out + self._release(len(self._text))

    def _held_tail(self) -> int:
        for n in range(min(self._longest - 1, len(self._text) - self._released), 0, -1):
            tail = self._text[-n:]
            if any(s.startswith(tail) for s in self._stops):
                return n
        return 0

    def _release(self, upto: int) -> str:
        out = self._text[self._released : upto]
        self._released = max(self._released, upto)
        return out


class Continuation:
    """One request's output so far: the text each new token makes visible and
    whether it ends the answer."""

    def __init__(self, tokenizer: Tokenizer, params: SamplingParams, context_length: int, start_pos: int) -> None:
        self.params = params
        self.context_length = context_length
        self.pos = start_pos  # tokens in the context after the last accepted one
        self.generated = 0
        self._decoder = tokenizer.stream_decoder()
        self._stopper = StopText(params.stop)
        self._stop_ids = frozenset() if params.ignore_eos else tokenizer.stop_ids

    def accept(self, token: int) -> tuple[str, FinishReason | None]:
        self.pos += 1
        self.generated += 1
        if token in self._stop_ids:
            return self._stopper.finish(self._decoder.flush()), "stop"
        piece = self._stopper.push(self._decoder.push(token))
        if self._stopper.stopped:
            return piece, "stop"
        if self.generated >= self.params.max_tokens or self.pos >= self.context_length:
            return piece + self._stopper.finish(self._decoder.flush()), "length"
        return piece, None
