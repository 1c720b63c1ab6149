"""``n`` choices on the device daemon (a real torch worker, in process): each choice a real seeded
generation equal to the backend's own, indices counted per choice, finish reasons per choice,
admission counting every choice, and bad ``n`` / ``uncertainty`` values refused with a 400 naming
the field while the daemon keeps serving."""

from __future__ import annotations

import json
import math

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from coordinator.cluster.device_client import DeviceClient, Refused
from device.worker import ModelWorker
from edgeweave.generation.sampling import SamplingParams
from edgeweave.wire.protocol import GenerateRequest, TokenMessage
from edgeweave.wire.uncertainty import UncertaintyRequest
from tests.device.conftest import KEY, MAX_QUEUE, collect, post_signed, serve, url

OPEN = "the"  # a prompt the tiny model is unsure how to go on: seeds give different answers
MESSAGES = [{"role": "user", "content": "turn off the bedroom lights"}]


async def test_n_choices_are_seeded_generations_with_per_choice_indices_and_finish_reasons(
    server: TestServer, session: aiohttp.ClientSession, worker: ModelWorker
) -> None:
    client = DeviceClient(session, KEY, url(server))
    asked = SamplingParams(max_tokens=10, temperature=1.5, seed=11, logprobs=2)
    prompt = worker.backend.tokenize(OPEN, add_bos=True)
    want = [worker.backend.generate(prompt, asked.model_copy(update={"seed": 11 + i})) for i in range(3)]
    req = GenerateRequest(prompt=OPEN, sampling=asked, n=3)
    _, tokens, done = await collect(client, req)
    by_choice = [[t for t in tokens if t.choice == i] for i in range(3)]
    assert {t.choice for t in tokens} == {0, 1, 2}
    for got, alone in zip(by_choice, want, strict=True):
        assert [t.index for t in got] == list(range(len(got)))
        assert [t.id for t in got] == alone.token_ids
        assert all(t.logprob is not None and len(t.logprob.top_logprobs) == 2 for t in got)
    assert len({tuple(w.token_ids) for w in want}) == 3  # seed + i: three different answers
    assert done.finish_reasons == [w.finish_reason for w in want] and done.finish_reason == want[0].finish_reason
    assert done.completion_tokens == len(tokens) == sum(len(w.token_ids) for w in want)
    _, again, _ = await collect(client, req)  # seeded: the same three answers again
    assert [(t.choice, t.id) for t in again] == [(t.choice, t.id) for t in tokens]
    assert worker.in_system == 0
    # n == 1 streams as before: every token choice 0, no per-choice finish reasons
    _, single, done = await collect(client, GenerateRequest(prompt=OPEN, sampling=asked))
    assert [t.id for t in single] == want[0].token_ids and {t.choice for t in single} == {0}
    assert done.finish_reasons == []


async def test_admission_counts_every_choice(
    server: TestServer, session: aiohttp.ClientSession, worker: ModelWorker
) -> None:
    client = DeviceClient(session, KEY, url(server))
    long = GenerateRequest(
        prompt=OPEN, sampling=SamplingParams(max_tokens=400, ignore_eos=True), request_id="choices-long"
    )
    async with client.generate(long) as events:
        async for ev in events:
            if isinstance(ev, TokenMessage):
                break
        assert worker.in_system == 1
        with pytest.raises(Refused) as refused:  # 1 running + 3 choices > 1 slot + 2 queued
            await collect(client, GenerateRequest(prompt=OPEN, sampling=SamplingParams(max_tokens=2), n=1 + MAX_QUEUE))
        assert refused.value.status == 429 and refused.value.error.code == "queue_full"
        await client.cancel("choices-long")
        async for _ in events:
            pass
    assert worker.in_system == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "hi", "n": 0}, "n"),
        ({"prompt": "hi", "n": 17}, "n"),
        ({"prompt": "hi", "n": 2 + MAX_QUEUE}, "n"),  # more than the device ever holds (1 slot + 2 queued)
        ({"messages": MESSAGES, "uncertainty": {"method": "vibes"}}, "uncertainty.method"),
        ({"messages": MESSAGES, "uncertainty": {"samples": 0}}, "uncertainty.samples"),
        ({"prompt": "hi", "uncertainty": {"method": "predictive_entropy"}}, "uncertainty"),  # nothing to perturb
        ({"messages": [{"role": "system", "content": "be brief"}], "uncertainty": {}}, "uncertainty"),  # no question
    ],
)
async def test_bad_n_and_uncertainty_are_a_400_naming_the_field(
    server: TestServer, session: aiohttp.ClientSession, worker: ModelWorker, body: dict, param: str
) -> None:
    status, got = await post_signed(session, server, json.dumps(body).encode())
    assert status == 400 and got["error"]["param"] == param and got["error"]["message"], got
    ok = GenerateRequest(prompt="hi", sampling=SamplingParams(max_tokens=3), n=2)
    _, tokens, done = await collect(DeviceClient(session, KEY, url(server)), ok)  # still serving
    assert len(tokens) == done.completion_tokens == 6 and worker.in_system == 0


async def test_a_device_without_an_embedder_refuses_uncertainty(
    worker: ModelWorker, session: aiohttp.ClientSession
) -> None:
    body = json.dumps({"messages": MESSAGES, "uncertainty": {"method": "predictive_entropy", "samples": 2}})
    async with serve(worker, embedder=None) as srv:
        status, got = await post_signed(session, srv, body.encode())
        assert status == 400 and got["error"]["param"] == "uncertainty" and "embedder" in got["error"]["message"]
        ok = GenerateRequest(prompt="hi", sampling=SamplingParams(max_tokens=3))
        _, tokens, _ = await collect(DeviceClient(session, KEY, url(srv)), ok)
        assert tokens


async def test_an_uncertainty_request_is_scored_in_the_done_event(
    server: TestServer, session: aiohttp.ClientSession, worker: ModelWorker
) -> None:
    client = DeviceClient(session, KEY, url(server))
    sampling = SamplingParams(max_tokens=6, temperature=0.0)
    for method in ("inv_entropy", "predictive_entropy"):
        u = UncertaintyRequest(method=method, samples=2, perturbations=2, max_tokens=4, seed=5)
        req = GenerateRequest(messages=MESSAGES, sampling=sampling, uncertainty=u)
        _, tokens, done = await collect(client, req)
        score = done.uncertainty
        assert score is not None and score.method == method and math.isfinite(score.score) and score.score >= 0
        assert score.inputs == u.inputs and score.samples == u.inputs * 2
        assert 0 < score.completion_tokens <= score.samples * 4 and score.prompt_tokens > 0
        assert done.completion_tokens == len(tokens)  # the extra samples are counted in the score only
    assert worker.in_system == 0
