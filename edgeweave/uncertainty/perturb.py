"""Paraphrase operators: the input perturbations Inv-Entropy answers besides the original question.

Rule-based operators (synonym swaps from a small lexicon of everyday words, clause reordering
around a comma or "and", politeness prefixes and suffixes, question reframing, typos) are cheap and
deterministic given an rng; each returns a new string or None when it does not apply.
:class:`RulePerturber` applies random operator chains: the unsearched baseline of
:mod:`edgeweave.uncertainty.gaap`.  The model's own paraphrases (asking the sampler at a
temperature) enter GAAP's population as candidates like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from edgeweave.uncertainty.samples import Sampler
from edgeweave.wire.protocol import Message

Rng = np.random.Generator
Operator = Callable[[str, Rng], str | None]

SYNONYMS: dict[str, tuple[str, ...]] = {
    "turn": ("switch", "set"),
    "switch": ("turn", "flip"),
    "lights": ("lamps", "lighting"),
    "light": ("lamp",),
    "lamp": ("light",),
    "room": ("space",),
    "kitchen": ("cooking area",),
    "what": ("which",),
    "is": ("would be",),
    "capital": ("capital city", "seat of government"),
    "please": ("kindly",),
    "start": ("begin", "launch"),
    "stop": ("end", "halt"),
    "open": ("unlock",),
    "close": ("shut",),
    "set": ("adjust", "put"),
    "show": ("display",),
    "tell": ("let me know",),
    "answer": ("reply",),
    "only": ("just",),
    "name": ("title",),
    "city": ("town",),
    "country": ("nation",),
    "temperature": ("heat",),
    "make": ("get",),
    "off": ("down",),
    "on": ("up",),
}
PREFIXES = ("Please, ", "Could you tell me: ", "Quick question: ", "I was wondering, ", "Hey, ")
SUFFIXES = (" Thanks.", " Please.", " Thank you!", " Cheers.")
_WORD = re.compile(r"[A-Za-z]+")


def synonym_swap(text: str, rng: Rng) -> str | None:
    spots = [m for m in _WORD.finditer(text) if m.group().lower() in SYNONYMS]
    if not spots:
        return None
    m = spots[int(rng.integers(len(spots)))]
    word = m.group()
    options = SYNONYMS[word.lower()]
    new = options[int(rng.integers(len(options)))]
    if word[0].isupper():
        new = new[0].upper() + new[1:]
    return text[: m.start()] + new + text[m.end() :]


def reorder_clauses(text: str, rng: Rng) -> str | None:
    body = text.rstrip(".?!")
    end = text[len(body) :]
    for sep in (", ", " and "):
        if sep in body:
            left, right = body.split(sep, 1)
            return f"{right[0].upper()}{right[1:]}{sep}{left[0].lower()}{left[1:]}{end}"
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s]
    if len(sentences) > 1:
        return " ".join(sentences[1:] + sentences[:1])
    return None


def polite(text: str, rng: Rng) -> str:
    if rng.random() < 0.5:
        prefix = PREFIXES[int(rng.integers(len(PREFIXES)))]
        return prefix + text[0].lower() + text[1:] if text else prefix
    return text + SUFFIXES[int(rng.integers(len(SUFFIXES)))]


def reframe(text: str, rng: Rng) -> str | None:
    q = text.strip()
    m = re.match(r"(?i)what is (.+?)\?(.*)$", q)
    if m:
        return f"Tell me {m.group(1)}.{m.group(2)}"
    if not q.endswith("?"):
        return f"Can you {q[0].lower()}{q[1:].rstrip('.')}?"
    return None


def typo(text: str, rng: Rng) -> str | None:
    """One adjacent-letter swap or dropped letter inside a lowercase word of 5+ letters (names kept)."""
    words = [m for m in _WORD.finditer(text) if len(m.group()) >= 5 and m.group().islower()]
    if not words:
        return None
    m = words[int(rng.integers(len(words)))]
    w = m.group()
    i = int(rng.integers(1, len(w) - 2))
    new = w[:i] + w[i + 1] + w[i] + w[i + 2 :] if rng.random() < 0.5 else w[:i] + w[i + 1 :]
    return text[: m.start()] + new + text[m.end() :]


OPERATORS: tuple[Operator, ...] = (synonym_swap, reorder_clauses, polite, reframe, typo)


def apply_chain(text: str, chain: Sequence[int], seed: int) -> str:
    """Apply operators ``chain`` (indices into OPERATORS) in order; an operator that does not apply is skipped."""
    rng = np.random.default_rng(seed)
    for op in chain:
        text = OPERATORS[op](text, rng) or text
    return text


class Perturber(Protocol):
    async def perturb(self, question: str, k: int, seed: int | None) -> list[str]:
        """``k`` perturbed versions of ``question`` (never the question itself unless nothing else applies)."""
        ...


class RulePerturber:
    """Random chains of 1-3 rule operators: the baseline GAAP's search is measured against."""

    async def perturb(self, question: str, k: int, seed: int | None) -> list[str]:
        rng = np.random.default_rng(seed)
        out: list[str] = []
        for _ in range(k * 8):
            if len(out) == k:
                break
            chain = rng.integers(0, len(OPERATORS), size=int(rng.integers(1, 4)))
            text = apply_chain(question, chain.tolist(), int(rng.integers(1 << 31)))
            if text != question and text not in out:
                out.append(text)
        while len(out) < k:
            out.append(polite(question, rng))
        return out


PARAPHRASE_INSTRUCTION = (
    "Rewrite the following request in different words, keeping its meaning. Reply with the rewrite only."
)


async def model_paraphrases(
    sampler: Sampler, question: str, n: int, temperature: float = 1.0, seed: int | None = None
) -> list[str]:
    """The model's own paraphrases of ``question``, sampled at ``temperature`` (first line, trimmed)."""
    messages = [Message(role="user", content=f"{PARAPHRASE_INSTRUCTION}\n\n{question}")]
    batch = await sampler.sample(messages, n, temperature, 48, seed)
    lines = [a.text.strip().splitlines()[0].strip().strip('"') for a in batch.answers if a.text.strip()]
    return [t for t in lines if t and t != question]
