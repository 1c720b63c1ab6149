"""How many tokens a sequence has left to generate, as the length-aware policies see it.

- :class:`BoundLengths`: Tempo's quantile-forest upper bound, re-predicted
  every ``REPREDICT_EVERY`` generated tokens (the forest's inputs are the
  prompt length and the last checkpoint reached, so its answers are memoized
  by those two numbers and the forest runs only for pairs not seen before);
- :class:`MaxTokens`: the request's own ``max_tokens`` (the only bound there
  is without a trained model);
- :class:`TrueLengths`: the real output lengths (the oracle; simulation only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from cloud.engine.scheduler import SeqView
from cloud.tempo.length import REPREDICT_EVERY, LengthBound


class LengthSource(Protocol):
    def remaining(self, views: Sequence[SeqView]) -> list[int]:
        """Tokens each sequence has left to generate (at least 1)."""
        ...


class BoundLengths:
    def __init__(self, model: LengthBound) -> None:
        self.model = model
        self._memo: dict[tuple[int, int], int] = {}  # (prompt tokens, checkpoint) -> predicted total

    def remaining(self, views: Sequence[SeqView]) -> list[int]:
        keys = [(v.prompt_tokens, v.generated_tokens // REPREDICT_EVERY) for v in views]
        missing = sorted({k for k in keys if k not in self._memo})
        if missing:
            totals = self.model.bounds([p for p, _ in missing], [c * REPREDICT_EVERY for p, c in missing])
            self._memo.update(zip(missing, totals, strict=True))
        return [max(self._memo[k] - v.generated_tokens, 1) for k, v in zip(keys, views, strict=True)]


class MaxTokens:
    def remaining(self, views: Sequence[SeqView]) -> list[int]:
        return [max(v.max_tokens - v.generated_tokens, 1) for v in views]


class TrueLengths:
    def __init__(self, lengths: Mapping[str, int]) -> None:
        self.lengths = lengths

    def remaining(self, views: Sequence[SeqView]) -> list[int]:
        return [max(self.lengths[v.id] - v.generated_tokens, 1) for v in views]
