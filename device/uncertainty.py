"""The device's uncertainty sampler: the answers a measure reads, as real generations through a worker.

:class:`WorkerSampler` implements :class:`edgeweave.uncertainty.samples.Sampler` over a
:class:`~device.worker.ModelWorker`, so Inv-Entropy (arXiv 2506.09684) and every baseline score a
device's answer on samples from the same model, the same batch slots and the same prompt cache
that served it: the ``samples`` answers to one input are generated concurrently in the worker's
slots (queued where it has one) and, after the first, reuse the cached prompt.

``p_true`` is Kadavath et al.'s p(True) (arXiv 2207.05221): the model is shown the question and the
proposed answer in a fixed verification prompt (:data:`VERIFY`, through the model's own chat
template) and its next-token distribution is read.  p(True) is the probability mass of the tokens
spelling "True" over that of "True" and "False" together, among the 20 most likely tokens.  Our
choices where the paper is silent: a token votes when, stripped of surrounding whitespace and
lower-cased, it is a non-empty prefix of "true" or of "false" (so " True", "True", "true" and a
byte-level model's "T" count for True); when neither word has a token in the top 20 the model
gave no verdict and p(True) is 0.5.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from device.worker import ModelWorker, Ticket
from edgeweave.errors import UsageError
from edgeweave.generation.logprobs import MAX_TOP_LOGPROBS, TokenLogprob, TopLogprob
from edgeweave.generation.sampling import SamplingParams
from edgeweave.uncertainty.samples import SampleBatch, SampledAnswer
from edgeweave.wire.protocol import Message

VERIFY = "Question: {question}\nProposed answer: {answer}\nIs the proposed answer true? Answer True or False."
NO_VERDICT = 0.5  # p(True) when neither "True" nor "False" is among the top tokens


@dataclass(frozen=True)
class _Generated:
    text: str
    logprobs: tuple[TokenLogprob, ...]  # one per generated token
    finish_reason: str | None


class SamplingCancelled(Exception):
    """The ticket the samples ran under was cancelled (its request was cancelled, or its client left)."""


def last_user(messages: Sequence[Message]) -> int:
    """Index of the last user message (the one a measure perturbs and p(True) asks about)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i
    raise UsageError("messages", "an uncertainty score needs a user message to ask about")


def true_share(top: Sequence[TopLogprob]) -> float:
    """p(True) / (p(True) + p(False)) over the tokens of one step (module docstring)."""
    mass = {"true": 0.0, "false": 0.0}
    for t in top:
        word = t.token.strip().lower()
        for verdict in mass:
            if word and verdict.startswith(word):
                mass[verdict] += math.exp(t.logprob)
    total = mass["true"] + mass["false"]
    return mass["true"] / total if total > 0 else NO_VERDICT


class WorkerSampler:
    """Samples for an uncertainty score from ``worker``.  With ``ticket`` (a request's, as the daemon
    passes it) the generations run under that request's admitted places; without, each call is
    admitted on its own (``min(n, slots)`` places) and raises :class:`~device.worker.QueueFull`
    when the worker is full."""

    def __init__(self, worker: ModelWorker, ticket: Ticket | None = None) -> None:
        self.worker = worker
        self._ticket = ticket

    async def sample(
        self, messages: Sequence[Message], n: int, temperature: float, max_tokens: int, seed: int | None
    ) -> SampleBatch:
        prompt = self.worker.chat_ids(messages)
        room = self.worker.backend.context_length - len(prompt)
        params = [
            SamplingParams(
                max_tokens=max(1, min(max_tokens, room)),
                temperature=temperature,
                seed=None if seed is None else seed + i,
                logprobs=0,
            )
            for i in range(n)
        ]
        async with self._places(n) as ticket:
            tasks = [asyncio.ensure_future(self._generate(ticket, prompt, p)) for p in params]
            try:
                answers = await asyncio.gather(*tasks)
            finally:  # one failed: the others stop before the places are given back
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return SampleBatch(
            answers=tuple(a for a, _ in answers),
            prompt_tokens=len(prompt),  # the prompt once, as for one request with n choices
            completion_tokens=sum(tokens for _, tokens in answers),
        )

    async def p_true(self, messages: Sequence[Message], answer: str) -> float:
        at = last_user(messages)
        question = VERIFY.format(question=messages[at].content, answer=answer)
        prompt = self.worker.chat_ids([*messages[:at], Message(role="user", content=question)])
        params = SamplingParams(max_tokens=1, logprobs=MAX_TOP_LOGPROBS)
        async with self._places(1) as ticket:
            out = await self._run(ticket, prompt, params)
        return true_share(out.logprobs[0].top_logprobs)

    @asynccontextmanager
    async def _places(self, n: int) -> AsyncIterator[Ticket]:
        if self._ticket is not None:
            yield self._ticket
            return
        ticket = self.worker.admit(min(n, self.worker.slots))
        try:
            yield ticket
        finally:
            self.worker.release(ticket)

    async def _generate(self, ticket: Ticket, prompt: list[int], params: SamplingParams) -> tuple[SampledAnswer, int]:
        out = await self._run(ticket, prompt, params)
        return SampledAnswer(out.text, tuple(lp.logprob for lp in out.logprobs), out.finish_reason), len(out.logprobs)

    async def _run(self, ticket: Ticket, prompt: list[int], params: SamplingParams) -> _Generated:
        pieces: list[str] = []
        logprobs: list[TokenLogprob] = []
        finish = None
        async for ev in self.worker.stream(ticket, prompt, params, ()):
            pieces.append(ev.text)
            assert ev.logprob is not None  # every params here asks for logprobs
            logprobs.append(ev.logprob)
            finish = ev.finish_reason
        if ticket.cancel.is_set():
            raise SamplingCancelled(f"{self.worker.name}: the request was cancelled while sampling")
        return _Generated("".join(pieces), tuple(logprobs), finish)
