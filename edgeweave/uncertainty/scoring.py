"""Score an answer: perturb the question, sample answers, embed, then one measure.

The orchestration every tier runs (device daemon, cloud service, coordinator) over its own
:class:`~edgeweave.uncertainty.samples.Sampler`.  :func:`collect` builds the
:class:`~edgeweave.uncertainty.samples.SampleSet` (the benchmark then runs every measure on the
same one); :func:`score` adds the measure and the accounting an API response reports.
Input i's answers are seeded ``seed + 1000 * i`` (choice j of it: + j), so a seeded score repeats.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

from edgeweave.uncertainty.gaap import GaapPerturber
from edgeweave.uncertainty.measures import measure
from edgeweave.uncertainty.perturb import Perturber
from edgeweave.uncertainty.samples import Embedder, Sampler, SampleSet, last_user
from edgeweave.wire.protocol import Message
from edgeweave.wire.uncertainty import UncertaintyRequest, UncertaintyScore

SEED_STRIDE = 1000


async def collect(
    messages: Sequence[Message],
    req: UncertaintyRequest,
    sampler: Sampler,
    embedder: Embedder,
    answer: str | None = None,
    perturber: Perturber | None = None,
) -> SampleSet:
    at = last_user(messages)
    question = messages[at].content
    inputs = [question]
    if req.inputs > 1:
        perturber = perturber or GaapPerturber(embedder)
        inputs += await perturber.perturb(question, req.inputs - 1, req.seed)

    def variant(text: str) -> list[Message]:
        return [*messages[:at], Message(role="user", content=text), *messages[at + 1 :]]

    def seed(i: int) -> int | None:
        return None if req.seed is None else req.seed + SEED_STRIDE * i

    r, t = req.samples, req.temperature
    asks = [sampler.sample(variant(x), r, t, req.max_tokens, seed(i)) for i, x in enumerate(inputs)]
    batches = await asyncio.gather(*asks)
    answers = tuple(b.answers for b in batches)
    texts = [a.text for row in answers for a in row]
    input_emb, answer_emb = await asyncio.to_thread(lambda: (embedder.embed(inputs), embedder.embed(texts)))
    p_true = None
    if req.method == "p_true":
        p_true = await sampler.p_true(messages, answer if answer is not None else answers[0][0].text)
    return SampleSet(
        inputs=tuple(inputs),
        input_embeddings=input_emb,
        answers=answers,
        answer_embeddings=np.asarray(answer_emb).reshape(len(inputs), req.samples, -1),
        p_true=p_true,
        prompt_tokens=sum(b.prompt_tokens for b in batches),
        completion_tokens=sum(b.completion_tokens for b in batches),
    )


async def score(
    messages: Sequence[Message],
    req: UncertaintyRequest,
    sampler: Sampler,
    embedder: Embedder,
    answer: str | None = None,
) -> UncertaintyScore:
    started = time.perf_counter()
    s = await collect(messages, req, sampler, embedder, answer)
    value = measure(req.method, s, req.seed, req.bootstrap)
    return UncertaintyScore(
        method=req.method,
        score=value,
        inputs=len(s.inputs),
        samples=len(s.inputs) * s.samples,
        prompt_tokens=s.prompt_tokens,
        completion_tokens=s.completion_tokens,
        seconds=time.perf_counter() - started,
    )
