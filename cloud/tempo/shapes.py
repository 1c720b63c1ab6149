"""Workload shapes: documented transforms of any request trace, to test a scheduler off its home trace.

A scheduler tuned on one trace may win only there (the Tempo benchmark once lost to EDF on a
long-prompt workload it had never seen).  Each shape rewrites the lengths of a trace's rows
(any CSV with ``TIMESTAMP,ContextTokens,GeneratedTokens``, read by
:func:`edgeweave.data.traces.load_trace`), keeping their arrival times, and then scales them
into the served model's context exactly as the benchmark always has
(:func:`cloud.tempo.workload.fit_to_context`: prompt / 12 within 8-320, output / 3 within
4-160).  The SLO mix (1:1:1 chat, tool, agent) is applied afterwards by
:func:`cloud.tempo.workload.mixed_workload`, the same for every shape.

- ``recorded``: the trace's lengths as recorded;
- ``long_prompt`` (RAG / code completion): the prompt x 2, the answer / 10 (on the Azure
  conversation trace the scaled prompt is then 16x the scaled answer for the median row, 20x
  in the mean: tens of times, as in the same provider's code trace);
- ``short_prompt`` (generation-heavy: writing, reasoning): the prompt / 10, the answer x 3;
- ``bimodal``: each row is ``long_prompt`` or ``short_prompt`` with probability 1/2;
- ``rag_mix``: each row is ``recorded`` or ``long_prompt`` with probability 1/2.

A mix draws its choice per row from a generator seeded by ``seed``, so a shape is a pure
function of (trace, seed).  Our own construction (the paper evaluates on recorded traces).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from cloud.tempo.workload import fit_to_context
from edgeweave.data.traces import TraceRequest


@dataclass(frozen=True)
class Stretch:
    """Multiply a row's prompt and answer lengths (rounded, at least 1 token each)."""

    prompt_x: float = 1.0
    output_x: float = 1.0

    def apply(self, r: TraceRequest) -> TraceRequest:
        return TraceRequest(
            r.arrival_s, max(1, round(r.prompt_tokens * self.prompt_x)), max(1, round(r.output_tokens * self.output_x))
        )


@dataclass(frozen=True)
class Shape:
    """A workload shape: each row takes one of ``parts`` (uniformly at random when several)."""

    name: str
    parts: tuple[Stretch, ...]
    doc: str

    def transform(self, trace: Sequence[TraceRequest], seed: int = 0) -> list[TraceRequest]:
        """The trace's rows, lengths transformed and then scaled into the model's context."""
        rng = random.Random(f"{self.name}:{seed}")
        out = []
        for r in trace:
            part = self.parts[0] if len(self.parts) == 1 else rng.choice(self.parts)
            out.append(TraceRequest(r.arrival_s, *fit_to_context(part.apply(r))))
        return out


AS_RECORDED = Stretch()
LONG_PROMPT = Stretch(prompt_x=2.0, output_x=0.1)
SHORT_PROMPT = Stretch(prompt_x=0.1, output_x=3.0)

SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("recorded", (AS_RECORDED,), "as recorded"),
        Shape("long_prompt", (LONG_PROMPT,), "prompt x2, answer /10"),
        Shape("short_prompt", (SHORT_PROMPT,), "prompt /10, answer x3"),
        Shape("bimodal", (LONG_PROMPT, SHORT_PROMPT), "long_prompt or short_prompt, 1:1"),
        Shape("rag_mix", (AS_RECORDED, LONG_PROMPT), "recorded or long_prompt, 1:1"),
    )
}
MIXED = ("bimodal", "rag_mix")  # the shapes the overload target (>= 1.4x) is set for
