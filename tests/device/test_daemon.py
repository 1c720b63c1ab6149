"""The device daemon's HTTP API, in process, on a real torch backend.

Signatures both ways, SSE token streams equal to the backend's own output,
resume, cancel, disconnect, bad input (4xx naming the field, server keeps
serving) and admission control under a burst (every token counted)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from coordinator.cluster.device_client import DeviceClient, NotTrusted, Refused
from device.worker import ModelWorker
from edgeweave.config import DEFAULT_POWER
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.sampling import SamplingParams
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.protocol import (
    DeviceInfo,
    DoneEvent,
    GenerateRequest,
    Message,
    PrefillResult,
    Telemetry,
    TokenMessage,
)
from tests.device.conftest import KEY, MAX_QUEUE, collect, post_signed, url

WRONG = ClusterKey(b"not-the-cluster-secret-1111111")
COMMAND = "turn off the bedroom lights"


async def test_info_and_telemetry_are_signed_both_ways(server: TestServer, session: aiohttp.ClientSession) -> None:
    client = DeviceClient(session, KEY, url(server))
    info = await client.get("/v1/info", DeviceInfo, 5)
    assert info.id == "jetson-t" and info.models[0].name == "weave-home-device" and info.models[0].context_length == 512
    tel = await client.get("/v1/telemetry", Telemetry, 5)
    assert tel.backends[0].decode_tok_s > 0 and tel.power_w >= DEFAULT_POWER["jetson"].idle_w
    assert "secret" not in json.dumps(info.model_dump()).lower()
    with pytest.raises(NotTrusted):  # a coordinator with the wrong secret gets nothing usable
        await DeviceClient(session, WRONG, url(server)).get("/v1/info", DeviceInfo, 5)


async def test_unsigned_forged_and_replayed_requests(server: TestServer, session: aiohttp.ClientSession) -> None:
    async with session.get(url(server) + "/v1/info") as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "cluster_auth"
    headers = WRONG.sign_request("GET", "/v1/info")
    async with session.get(url(server) + "/v1/info", headers=headers) as resp:
        assert resp.status == 403
    headers = KEY.sign_request("GET", "/v1/info")
    async with session.get(url(server) + "/v1/info", headers=headers) as resp:
        assert resp.status == 200
    async with session.get(url(server) + "/v1/info", headers=headers) as resp:  # the same nonce again
        assert resp.status == 403 and "replayed" in (await resp.json())["error"]["message"]
    async with session.get(url(server) + "/health") as resp:
        assert resp.status == 200
    async with session.get(url(server) + "/metrics") as resp:
        assert "edgeweave_device_requests" in await resp.text()


async def test_stream_matches_the_backend_and_resume_continues(
    server: TestServer, session: aiohttp.ClientSession, worker: ModelWorker
) -> None:
    client = DeviceClient(session, KEY, url(server))
    want = worker.backend.generate(chat_prompt(worker.backend, COMMAND), SamplingParams(max_tokens=200))
    req = GenerateRequest(messages=[Message(role="user", content=COMMAND)], sampling=SamplingParams(max_tokens=200))
    start, tokens, done = await collect(client, req)
    assert [t.id for t in tokens] == want.token_ids
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert "".join(t.text for t in tokens) == want.text
    assert done.finish_reason == "stop" and done.completion_tokens == len(tokens) and done.energy_j > 0
    # migration: another endpoint continues after the first 10 tokens
    prompt = chat_prompt(worker.backend, COMMAND)
    resumed = GenerateRequest(prompt=prompt, resume_tokens=want.token_ids[:10], sampling=SamplingParams(max_tokens=200))
    start, tokens, done = await collect(client, resumed)
    assert start.prompt_tokens == len(prompt) + 10
    assert [t.id for t in tokens] == want.token_ids[10:]


async def test_token_events_carry_logprobs_when_asked(
    server: TestServer, session: aiohttp.ClientSession, worker: ModelWorker
) -> None:
    client = DeviceClient(session, KEY, url(server))
    asked = SamplingParams(max_tokens=12, ignore_eos=True, logprobs=3)
    want = list(worker.backend.stream(chat_prompt(worker.backend, COMMAND), asked))
    messages = [Message(role="user", content=COMMAND)]
    _, tokens, _ = await collect(client, GenerateRequest(messages=messages, sampling=asked))
    assert [t.id for t in tokens] == [ev.token_id for ev in want]
    # the same backend on the same input in one process: the same floats, and JSON round-trips them exactly
    assert [t.logprob for t in tokens] == [ev.logprob for ev in want]
    assert all(t.logprob is not None and len(t.logprob.top_logprobs) == 3 for t in tokens)
    plain = GenerateRequest(messages=messages, sampling=asked.model_copy(update={"logprobs": None}))
    _, tokens, _ = await collect(client, plain)
    assert [t.id for t in tokens] == [ev.token_id for ev in want] and all(t.logprob is None for t in tokens)


async def test_prefill_warms_the_prompt_cache_and_a_resume_evaluates_only_new_tokens(
    server: TestServer, session: aiohttp.ClientSession, worker: ModelWorker
) -> None:
    prompt = chat_prompt(worker.backend, COMMAND)
    want = worker.backend.generate(prompt, SamplingParams(max_tokens=8, ignore_eos=True)).token_ids
    worker.backend.logits([1])  # the slot now holds something else
    status, body = await post_signed(session, server, json.dumps({"prompt": prompt}).encode(), "/v1/prefill")
    assert status == 200, body
    warmed = PrefillResult.model_validate(body)
    assert (warmed.prompt_tokens, warmed.cached_tokens) == (len(prompt), 0)
    assert warmed.prefill_s > 0 and warmed.energy_j > 0
    # DiSCo's warm target: the answer moves here after 3 tokens; only those 3 are evaluated
    req = GenerateRequest(prompt=prompt, resume_tokens=want[:3], sampling=SamplingParams(max_tokens=5, ignore_eos=True))
    _, tokens, done = await collect(DeviceClient(session, KEY, url(server)), req)
    assert [t.id for t in tokens] == want[3:]
    assert done.cached_tokens == len(prompt) and done.prompt_tokens == len(prompt) + 3


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (json.dumps({"prompt": 5}).encode(), 400, "prompt"),
        (json.dumps({"prompt": "hi", "model": "gpt-9"}).encode(), 404, "model"),
        (json.dumps({"prompt": [1, 99999]}).encode(), 400, "prompt"),
        (json.dumps({"prompt": "hi", "resume_tokens": [-1]}).encode(), 400, "resume_tokens"),
        (json.dumps({"prompt": "hi", "sampling": {"max_tokens": 3}}).encode(), 400, "sampling"),
        (json.dumps({"prompt": [1] * 600}).encode(), 400, "prompt"),
    ],
)
async def test_prefill_bad_input_is_a_4xx_naming_the_field(
    server: TestServer, session: aiohttp.ClientSession, body: bytes, status: int, param: str | None
) -> None:
    got_status, got = await post_signed(session, server, body, "/v1/prefill")
    assert got_status == status, got
    assert got["error"]["message"] and got["error"]["param"] == param, got


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (json.dumps({"prompt": 5}).encode(), 400, "prompt"),
        (json.dumps({"prompt": "hi", "model": "gpt-9"}).encode(), 404, "model"),
        (json.dumps({"prompt": "hi", "sampling": {"max_tokens": 0}}).encode(), 400, "sampling.max_tokens"),
        (json.dumps({"prompt": "hi", "sampling": {"max_tokens": 100000}}).encode(), 400, "sampling.max_tokens"),
        (json.dumps({"prompt": "hi", "sampling": {"temperature": "hot"}}).encode(), 400, "sampling.temperature"),
        (json.dumps({"messages": []}).encode(), 400, None),
        (json.dumps({"prompt": "hi", "messages": [{"role": "user", "content": "x"}]}).encode(), 400, None),
        (json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(), 400, "messages[0].role"),
        (json.dumps({"prompt": [1, 99999]}).encode(), 400, "prompt"),
        (json.dumps({"prompt": "hi", "resume_tokens": [-1]}).encode(), 400, "resume_tokens"),
        (json.dumps({"prompt": "x" * (10 * 2**20)}).encode(), 400, "prompt"),
        (json.dumps({"prompt": "hi", "unknown": 1}).encode(), 400, "unknown"),
        (json.dumps({"prompt": "hi", "sampling": {"logprobs": 21}}).encode(), 400, "sampling.logprobs"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(
    server: TestServer, session: aiohttp.ClientSession, body: bytes, status: int, param: str | None
) -> None:
    got_status, got = await post_signed(session, server, body)
    assert got_status == status, got
    assert set(got["error"]) == {"message", "type", "param", "code"} and got["error"]["message"]
    if param is not None:
        assert got["error"]["param"] == param, got
    ok = GenerateRequest(prompt="hi", sampling=SamplingParams(max_tokens=3))
    _, tokens, done = await collect(DeviceClient(session, KEY, url(server)), ok)  # still serving
    assert len(tokens) == done.completion_tokens == 3


async def test_cancel_by_id_and_by_disconnect(
    server: TestServer, session: aiohttp.ClientSession, worker: ModelWorker
) -> None:
    client = DeviceClient(session, KEY, url(server))
    long = SamplingParams(max_tokens=400, ignore_eos=True)
    req = GenerateRequest(prompt="tell me", sampling=long, request_id="req-cancel-1")
    async with client.generate(req) as events:
        got = []
        async for ev in events:
            got.append(ev)
            if len(got) == 3:
                await client.cancel("req-cancel-1")
    assert isinstance(got[-1], DoneEvent) and got[-1].finish_reason == "cancelled"
    assert got[-1].completion_tokens < 400
    # a client that goes away: the device stops generating and frees the slot
    async with client.generate(GenerateRequest(prompt="tell me", sampling=long)) as events:
        async for ev in events:
            if isinstance(ev, TokenMessage):
                break
    for _ in range(100):
        if worker.in_system == 0:
            break
        await asyncio.sleep(0.05)
    assert worker.in_system == 0
    async with session.get(url(server) + "/metrics") as resp:
        text = await resp.text()
    assert 'outcome="cancelled"} 2.0' in text, text


async def test_burst_admission_control_loses_and_duplicates_no_token(
    server: TestServer, session: aiohttp.ClientSession, worker: ModelWorker
) -> None:
    client = DeviceClient(session, KEY, url(server))
    n_tokens, burst = 48, 8
    params = SamplingParams(max_tokens=n_tokens, ignore_eos=True)
    want = worker.backend.generate(worker.backend.tokenize("the", add_bos=True), params).token_ids

    async def one() -> list[TokenMessage] | Refused:
        try:
            _, tokens, done = await collect(client, GenerateRequest(prompt="the", sampling=params))
        except Refused as e:
            return e
        assert done.completion_tokens == len(tokens)
        return tokens

    results = await asyncio.gather(*(one() for _ in range(burst)))
    accepted = [r for r in results if not isinstance(r, Refused)]
    refused = [r for r in results if isinstance(r, Refused)]
    assert len(accepted) >= 1 + MAX_QUEUE and refused, (len(accepted), len(refused))
    for r in refused:
        assert r.status == 429 and r.retry_after_s and r.retry_after_s >= 1 and r.error.code == "queue_full"
    for tokens in accepted:
        assert [t.index for t in tokens] == list(range(n_tokens))
        assert [t.id for t in tokens] == want
