"""The device's uncertainty sampler: the answers a measure reads, as real generations through a worker.

:class:`WorkerSampler` implements :class:`edgeweave.uncertainty.samples.Sampler` over a
:class:`~device.worker.ModelWorker`, so Inv-Entropy (arXiv 2506.09684) and every baseline score a
device's answer on samples from the same model, the same batch slots and the same prompt cache
that served it: the ``samples`` answers to one input are generated concurrently in the worker's
slots (queued where it has one) and, after the first, reuse the cached prompt.

``p_true`` is Kadavath et al.'s p(True), with the verification prompt and arithmetic every tier
shares (:mod:`edgeweave.uncertainty.p_true`), answered by one greedy step through this worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from device.worker import ModelWorker, Ticket
from edgeweave.generation.logprobs import TokenLogprob
from edgeweave.generation.sampling import SamplingParams
from edgeweave.uncertainty.p_true import P_TRUE_SAMPLING, p_true_of, verification_messages
from edgeweave.uncertainty.samples import SampleBatch, SampledAnswer
from edgeweave.wire.protocol import Message


@dataclass(frozen=True)
class _Generated:
    text: str
    logprobs: tuple[TokenLogprob, ...]  # one per generated token
    finish_reason: str | None


class SamplingCancelled(Exception):
    """The ticket the samples ran under was cancelled (its request was cancelled, or its client left)."""


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
        prompt = self.worker.chat_ids(verification_messages(messages, answer))
        async with self._places(1) as ticket:
            out = await self._run(ticket, prompt, P_TRUE_SAMPLING)
        return p_true_of(out.logprobs[0])

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
