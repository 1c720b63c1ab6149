"""The cloud service's side of the uncertainty API, as a real process through the official ``openai``
client: ``n`` choices (bodies and interleaved streams), the ``uncertainty`` score with its cost in
``usage``, ``/v1/embeddings`` (float and base64), and every bad input as a 400 naming the field."""

from __future__ import annotations

import asyncio
import base64
import collections
import time

import aiohttp
import numpy as np
import openai
import pytest

from edgeweave.cluster.processes import ServiceProcess
from edgeweave.models.embedder import MINILM
from tests.cloud.test_server import metric
from tests.conftest import CLOUD_KEY, CLOUD_MODEL

MODEL, KEY = CLOUD_MODEL, CLOUD_KEY
COMMAND = [{"role": "user", "content": "lock the front door"}]
CHAT = [{"role": "user", "content": "hello there, how are you?"}]  # off the commands: the model hesitates
TINY_SCORE = {"method": "inv_entropy", "samples": 2, "perturbations": 2, "max_tokens": 4}


def client(svc: ServiceProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=svc.url + "/v1", api_key=KEY, max_retries=0)


async def test_n_choices_are_seeded_apart_and_share_the_prompt(cloud_server: ServiceProcess) -> None:
    c = client(cloud_server)
    hits = metric(cloud_server.url, "edgeweave_cloud_prefix_hit_blocks")
    # 16 new tokens at T = 2 on a question off the commands: every seed draws its own answer
    ask = {
        "model": MODEL,
        "messages": CHAT,
        "max_tokens": 16,
        "temperature": 2.0,
        "extra_body": {"ignore_eos": True},
    }
    r = await c.chat.completions.create(**ask, n=3, seed=11)  # type: ignore[call-overload]
    assert [ch.index for ch in r.choices] == [0, 1, 2]
    texts = [ch.message.content for ch in r.choices]
    assert len(set(texts)) == 3, texts
    # the prompt (29 byte tokens: one full block of 16) is prefilled once; choices 1 and 2 reuse its block
    assert metric(cloud_server.url, "edgeweave_cloud_prefix_hit_blocks") >= hits + 2
    one = await c.chat.completions.create(**ask, seed=12)  # type: ignore[call-overload]
    # choice 1 is the request seeded 12: the same logits up to batch rounding (~1e-7), and a draw lands
    # that close to a boundary of the sampling distribution with probability ~1e-6 per token
    assert one.choices[0].message.content == texts[1]
    assert r.usage is not None and one.usage is not None
    assert r.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt counted once, as OpenAI's
    assert r.usage.completion_tokens == 3 * 16 and one.usage.completion_tokens == 16


async def test_n_choices_stream_interleaved_with_a_finish_each(cloud_server: ServiceProcess) -> None:
    c = client(cloud_server)
    stream = await c.chat.completions.create(
        model=MODEL,
        messages=COMMAND,
        n=2,
        max_tokens=6,
        temperature=1.0,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    roles: collections.Counter[int] = collections.Counter()
    finishes: collections.Counter[int] = collections.Counter()
    text: dict[int, str] = collections.defaultdict(str)
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
        for ch in chunk.choices:
            roles[ch.index] += ch.delta.role == "assistant"
            text[ch.index] += ch.delta.content or ""
            if ch.finish_reason is not None:
                assert ch.finish_reason == "length"
                finishes[ch.index] += 1
    assert roles == finishes == {0: 1, 1: 1}
    assert usage is not None and usage.completion_tokens == 2 * 6
    body = await c.chat.completions.create(
        model=MODEL, messages=COMMAND, n=2, max_tokens=6, temperature=1.0, seed=3, extra_body={"ignore_eos": True}
    )
    assert [ch.message.content for ch in body.choices] == [text[0], text[1]]  # the same seeds, streamed or not


async def test_uncertainty_comes_back_scored_with_its_cost(cloud_server: ServiceProcess) -> None:
    c = client(cloud_server)
    r = await c.chat.completions.create(
        model=MODEL, messages=COMMAND, max_tokens=8, temperature=0, seed=5, extra_body={"uncertainty": TINY_SCORE}
    )
    score = (r.model_extra or {})["uncertainty"]
    assert score["method"] == "inv_entropy" and score["inputs"] == 3 and score["samples"] == 6
    assert np.isfinite(score["score"]) and score["score"] >= 0.0 and score["completion_tokens"] > 0
    usage = (r.usage.model_extra or {}) if r.usage else {}
    assert usage["uncertainty_prompt_tokens"] == score["prompt_tokens"] > 0
    assert usage["uncertainty_completion_tokens"] == score["completion_tokens"]

    stream = await c.chat.completions.create(
        model=MODEL,
        messages=COMMAND,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"uncertainty": {**TINY_SCORE, "method": "lexical_similarity"}},
    )
    chunks = [chunk async for chunk in stream]
    finished = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason is not None]
    assert len(finished) == 1
    streamed = (finished[0].model_extra or {})["uncertainty"]
    assert streamed["method"] == "lexical_similarity" and streamed["inputs"] == 1 and streamed["samples"] == 2
    assert 0.0 <= streamed["score"] <= 1.0
    assert all("uncertainty" not in (ch.model_extra or {}) for ch in chunks if ch is not finished[0])
    tail = chunks[-1].usage
    assert (
        tail is not None and (tail.model_extra or {})["uncertainty_completion_tokens"] == streamed["completion_tokens"]
    )


async def test_embeddings_float_and_base64_agree(cloud_server: ServiceProcess) -> None:
    c = client(cloud_server)
    texts = ["lock the front door", "is the front door locked?"]
    floats = await c.embeddings.create(model=MINILM, input=texts)
    packed = await c.embeddings.create(model=MINILM, input=texts, encoding_format="base64")
    assert [d.index for d in floats.data] == [0, 1] and floats.model == MINILM
    a = np.array([d.embedding for d in floats.data])
    b = np.array([np.frombuffer(base64.b64decode(d.embedding), "<f4") for d in packed.data])
    assert a.shape == (2, 384)
    # float32 rows written as JSON floats and read back: exact (every float32 has a shortest repr that round-trips)
    assert np.array_equal(a.astype(np.float32), b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)  # L2-normalised float32 rows
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > len(texts)
    one = await c.embeddings.create(model=MINILM, input=texts[0])
    assert np.allclose(one.data[0].embedding, a[0], atol=1e-5)  # batched or alone: padding changes nothing


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/chat/completions", {"model": MODEL, "messages": COMMAND, "n": 0}, 400, "n"),
        ("/v1/chat/completions", {"model": MODEL, "messages": COMMAND, "n": 17}, 400, "n"),
        ("/v1/chat/completions", {"model": MODEL, "messages": COMMAND, "uncertainty": {"method": "vibes"}}, 400,
         "uncertainty.method"),
        ("/v1/chat/completions", {"model": MODEL, "messages": COMMAND, "uncertainty": {"samples": 0}}, 400,
         "uncertainty.samples"),
        ("/v1/chat/completions", {"model": MODEL, "messages": COMMAND, "uncertainty": {"temperature": 0}}, 400,
         "uncertainty.temperature"),
        ("/v1/chat/completions", {"model": MODEL, "messages": COMMAND, "uncertainty": {"top": 3}}, 400,
         "uncertainty.top"),
        ("/v1/chat/completions",
         {"model": MODEL, "messages": COMMAND, "uncertainty": {"method": "luq", "samples": 1}}, 400, "uncertainty"),
        ("/v1/completions", {"model": MODEL, "prompt": "lock", "uncertainty": {}}, 400, "uncertainty"),
        ("/v1/embeddings", {"model": MINILM, "input": ""}, 400, "input"),
        ("/v1/embeddings", {"model": MINILM, "input": []}, 400, "input"),
        ("/v1/embeddings", {"model": MINILM, "input": [101, 2023]}, 400, "input"),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}, 404, "model"),
        ("/v1/embeddings", {"model": MINILM, "input": "hi", "dimensions": 64}, 400, "dimensions"),
        ("/v1/embeddings", {"model": MINILM, "input": "hi", "encoding_format": "int8"}, 400, "encoding_format"),
    ],
)  # fmt: skip
async def test_bad_input_names_the_field(
    cloud_server: ServiceProcess, path: str, body: dict[str, object], status: int, param: str
) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        async with s.post(cloud_server.url + path, json=body) as resp:
            err = (await resp.json())["error"]
    assert resp.status == status, err
    assert err["param"] == param or err["param"].startswith(f"{param}["), err


async def test_completions_n_stream_their_own_offsets(cloud_server: ServiceProcess) -> None:
    c = client(cloud_server)
    ask = {"model": MODEL, "prompt": "lock the", "n": 2, "max_tokens": 5, "temperature": 2.0, "seed": 1, "logprobs": 1}
    body = await c.completions.create(**ask, extra_body={"ignore_eos": True})  # type: ignore[call-overload]
    assert [ch.index for ch in body.choices] == [0, 1]
    stream = await c.completions.create(**ask, stream=True, extra_body={"ignore_eos": True})  # type: ignore[call-overload]
    offsets: dict[int, list[int]] = collections.defaultdict(list)
    async for chunk in stream:
        for ch in chunk.choices:
            if ch.logprobs is not None:
                offsets[ch.index] += ch.logprobs.text_offset or []
    for ch in body.choices:
        assert ch.logprobs is not None and offsets[ch.index] == ch.logprobs.text_offset  # each choice from 0


async def test_a_client_that_leaves_n_choices_frees_their_blocks(cloud_server: ServiceProcess) -> None:
    base = cloud_server.url
    body = {"model": MODEL, "messages": COMMAND, "n": 2, "max_tokens": 40, "ignore_eos": True, "stream": True}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        async with s.post(base + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 200
            for _ in range(8):
                await resp.content.readline()
    deadline = time.monotonic() + 20
    while metric(base, "edgeweave_cloud_kv_blocks_used") or metric(base, "edgeweave_cloud_running"):
        assert time.monotonic() < deadline, "the choices' blocks were not freed after the client left"
        await asyncio.sleep(0.05)
