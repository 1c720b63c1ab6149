"""The cloud's :class:`~edgeweave.uncertainty.samples.Sampler`: real generations on the engine.

An uncertainty measure needs several answers to each input and their tokens' log-probabilities
(:mod:`edgeweave.uncertainty.scoring` asks for them); here they are sequences on the cloud's
:class:`~cloud.engine.async_engine.AsyncEngine`, batched with the live requests.  The ``n`` answers
to one input are one prompt: the first is started alone and the others once its first token is out,
so they find the prompt's blocks in the prefix cache instead of prefilling it again.  p(True) is
Kadavath et al.'s: the verification prompt and its arithmetic are the core's
(:mod:`edgeweave.uncertainty.p_true`), the one greedy step runs here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

from cloud.engine.async_engine import AsyncEngine
from cloud.engine.engine import TokenOutput
from edgeweave.errors import UsageError
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.tokenizer import ChatMessage
from edgeweave.uncertainty.p_true import P_TRUE_SAMPLING, p_true_of, verification_messages
from edgeweave.uncertainty.samples import SampleBatch, SampledAnswer
from edgeweave.wire.protocol import Message


async def _rest(first: TokenOutput, stream: AsyncIterator[TokenOutput]) -> list[TokenOutput]:
    """A sequence's tokens to its end, its first already read."""
    return [first] if first.finish_reason else [first, *[out async for out in stream]]


class EngineSampler:
    """Answers sampled on ``engine`` (started, its thread running) with the base model or
    ``lora_adapter``; prompts rendered with the engine's tokenizer and chat template."""

    def __init__(self, engine: AsyncEngine, lora_adapter: str | None = None) -> None:
        self.engine = engine
        self.lora_adapter = lora_adapter

    def _prompt(self, messages: Sequence[Message]) -> list[int]:
        tokenizer = self.engine.engine.tokenizer
        return tokenizer.render_chat([ChatMessage(m.role, m.content) for m in messages])

    def _start(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[TokenOutput]:
        return self.engine.generate(f"uq-{uuid.uuid4().hex}", prompt, params, lora_adapter=self.lora_adapter)

    async def _choices(self, prompt: list[int], params: Sequence[SamplingParams]) -> list[list[TokenOutput]]:
        """Each parameter set's tokens.  The first sequence prefills the prompt into the prefix cache, the
        others start together once it has; all run on the engine while they are read one after another
        (each stream's tokens wait in its own queue)."""
        streams = [self._start(prompt, params[0])]
        try:
            firsts = [await anext(streams[0])]
            streams += [self._start(prompt, p) for p in params[1:]]
            more = await asyncio.gather(*(anext(s) for s in streams[1:]), return_exceptions=True)
            for first in more:
                if isinstance(first, BaseException):
                    raise first
                firsts.append(first)
            return [await _rest(first, stream) for first, stream in zip(firsts, streams, strict=True)]
        finally:
            for stream in streams:  # a sequence not read to its end is aborted on the engine
                await stream.aclose()  # type: ignore[attr-defined]

    async def sample(
        self, messages: Sequence[Message], n: int, temperature: float, max_tokens: int, seed: int | None
    ) -> SampleBatch:
        prompt = self._prompt(messages)
        room = self.engine.engine.context_length - len(prompt)
        if room < 1:
            raise UsageError("messages", f"{len(prompt)} tokens leave no room in the model's context")
        # a perturbed input may be longer than the original: its answers get what room is left
        base = SamplingParams(max_tokens=min(max_tokens, room), temperature=temperature, seed=seed, logprobs=0)
        runs = await self._choices(prompt, [base.for_choice(i) for i in range(n)])
        answers = tuple(
            SampledAnswer(
                text="".join(t.text for t in tokens),
                token_logprobs=tuple(t.logprob.logprob for t in tokens if t.logprob is not None),
                finish_reason=tokens[-1].finish_reason,
            )
            for tokens in runs
        )
        # OpenAI's count for one request with n choices: the prompt once, every answer's tokens
        return SampleBatch(answers, prompt_tokens=len(prompt), completion_tokens=sum(len(t) for t in runs))

    async def p_true(self, messages: Sequence[Message], answer: str) -> float:
        prompt = self._prompt(verification_messages(messages, answer))
        (tokens,) = await self._choices(prompt, [P_TRUE_SAMPLING])
        step = tokens[0].logprob
        assert step is not None  # P_TRUE_SAMPLING asks for logprobs
        return p_true_of(step)
