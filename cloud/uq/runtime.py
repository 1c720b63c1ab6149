"""The cloud's uncertainty glue: the embedder, loaded on first use, and the scorer of one answer.

:class:`UqRuntime` holds what the service's requests share: the engine (for
:class:`~cloud.uq.sampler.EngineSampler`) and the configured sentence embedder, loaded once, off
the event loop, by the first request that needs it.  :class:`AnswerScorer` scores choice 0 of one
request with :func:`edgeweave.uncertainty.scoring.score`; a measure that does not read the answer
(all but p(True)) starts sampling with the answer, so its sequences share the engine's batches with
it, and p(True) starts once the answer is known.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cloud.engine.async_engine import AsyncEngine
from cloud.uq.sampler import EngineSampler
from edgeweave.serving.embeddings import LazyEmbedder
from edgeweave.serving.http_errors import ApiError
from edgeweave.uncertainty.scoring import score
from edgeweave.wire.protocol import Message
from edgeweave.wire.uncertainty import UncertaintyRequest, UncertaintyScore


class UqRuntime:
    """``embedder``: :func:`~edgeweave.models.embedder.load_embedder`'s name (None: no embeddings,
    no scores)."""

    def __init__(self, engine: AsyncEngine, embedder: str | None) -> None:
        self.engine = engine
        self.embedder = None if embedder is None else LazyEmbedder(embedder)

    def scorer(
        self, messages: Sequence[Message], req: UncertaintyRequest, seed: int | None, lora_adapter: str | None
    ) -> AnswerScorer:
        """The scorer of one request's answer (its samples seeded as the request, unless ``req`` names a seed)."""
        if self.embedder is None:
            raise ApiError(400, "uncertainty: this server has no embedder configured", param="uncertainty")
        if req.seed is None and seed is not None:
            req = req.model_copy(update={"seed": seed})
        return AnswerScorer(self, list(messages), req, EngineSampler(self.engine, lora_adapter))


class AnswerScorer:
    def __init__(
        self, runtime: UqRuntime, messages: list[Message], req: UncertaintyRequest, sampler: EngineSampler
    ) -> None:
        self._runtime = runtime
        self._messages = messages
        self.request = req
        self._sampler = sampler
        self._task: asyncio.Task[UncertaintyScore] | None = None

    def begin(self) -> None:
        """The answer has started: a measure that does not read it samples beside it from now on."""
        if self.request.method != "p_true" and self._task is None:
            self._task = asyncio.create_task(self._score(None))

    async def _score(self, answer: str | None) -> UncertaintyScore:
        assert self._runtime.embedder is not None
        embedder = await self._runtime.embedder.get()
        return await score(self._messages, self.request, self._sampler, embedder, answer=answer)

    async def result(self, answer: str) -> UncertaintyScore:
        """The score, once ``answer`` (choice 0's text) is complete."""
        if self._task is None:
            self._task = asyncio.create_task(self._score(answer))
        return await self._task

    def cancel(self) -> None:
        """The answer was abandoned: stop scoring it (its sequences are aborted on the engine)."""
        if self._task is None:
            return
        if self._task.done() and not self._task.cancelled():
            self._task.exception()  # a score that failed before anyone asked for it: nobody will
        self._task.cancel()
