"""``edgeweave cloud serve`` as a real process: the openai client, bad input,
disconnects freeing KV blocks, memory pressure, and the coordinator using it
as a cloud endpoint."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from pathlib import Path

import aiohttp
import openai
import pytest

from device.backends.torch_backend import TorchBackend
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.cluster.processes import ServiceProcess
from edgeweave.data.traces import load_trace
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.tokenizer import ByteTokenizer, ChatMessage
from tests.conftest import CLOUD_KEY, CLOUD_MODEL

MODEL, KEY = CLOUD_MODEL, CLOUD_KEY
COMMANDS = (
    "dim the kitchen lights to 30%",
    "lock the front door",
    "make it 21 degrees in the office and play jazz in the bedroom",
    "set the garage fan to high",
    "close the living room blinds",
    "play jazz in the bedroom",
)


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    backend = TorchBackend.load(resolve_checkpoint(MODEL))
    tok = ByteTokenizer()
    params = SamplingParams(max_tokens=60)
    return {c: backend.generate(tok.render_chat([ChatMessage("user", c)]), params).text for c in COMMANDS}


def metric(base: str, name: str) -> float:
    text = urllib.request.urlopen(base + "/metrics").read().decode()
    return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]


def client(svc: ServiceProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=svc.url + "/v1", api_key=KEY, max_retries=0)


async def test_openai_client_chat_stream_completions_and_models(
    cloud_server: ServiceProcess, reference: dict[str, str]
) -> None:
    c = client(cloud_server)
    models = await c.models.list()
    assert [m.id for m in models.data] == [MODEL]
    msg = [{"role": "user", "content": COMMANDS[0]}]
    r = await c.chat.completions.create(model=MODEL, messages=msg, max_tokens=60, temperature=0)
    assert r.choices[0].message.content == reference[COMMANDS[0]]
    assert r.usage is not None and r.usage.completion_tokens > 0
    stream = await c.chat.completions.create(
        model=MODEL, messages=msg, max_tokens=60, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    parts, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        usage = chunk.usage or usage
    assert "".join(parts) == reference[COMMANDS[0]]
    assert usage is not None and usage.total_tokens == r.usage.total_tokens
    done = await c.completions.create(model=MODEL, prompt="turn on", max_tokens=5, extra_body={"ignore_eos": True})
    assert done.usage is not None and done.usage.completion_tokens == 5 and done.choices[0].finish_reason == "length"
    assert metric(cloud_server.url, "edgeweave_cloud_ttft_seconds_count") >= 3


async def test_kv_pressure_preempts_without_corrupting_answers(
    cloud_server: ServiceProcess, reference: dict[str, str]
) -> None:
    c = client(cloud_server)

    async def ask(cmd: str) -> str:
        msg = [{"role": "user", "content": cmd}]
        r = await c.chat.completions.create(model=MODEL, messages=msg, max_tokens=60, temperature=0)
        return r.choices[0].message.content or ""

    answers = await asyncio.gather(*(ask(cmd) for cmd in COMMANDS))
    assert answers == [reference[cmd] for cmd in COMMANDS]
    assert metric(cloud_server.url, "edgeweave_cloud_preemptions") > 0


async def test_a_client_that_disconnects_frees_its_blocks(cloud_server: ServiceProcess) -> None:
    base = cloud_server.url
    assert metric(base, "edgeweave_cloud_kv_blocks_used") == 0
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": COMMANDS[1]}],
        "max_tokens": 100,  # the cache holds 128 tokens
        "ignore_eos": True,
        "stream": True,
    }
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        async with s.post(base + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 200
            for _ in range(5):
                await resp.content.readline()
            assert metric(base, "edgeweave_cloud_kv_blocks_used") > 0
    deadline = time.monotonic() + 20
    while metric(base, "edgeweave_cloud_kv_blocks_used") != 0:
        assert time.monotonic() < deadline, "blocks were not freed after the client left"
        await asyncio.sleep(0.05)
    assert metric(base, "edgeweave_cloud_running") == 0


@pytest.mark.parametrize(
    ("body", "status", "param", "says"),
    [
        ({"model": MODEL, "messages": [{"role": "user", "content": "x" * 600}]}, 400, "messages", "context of 512"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 600}, 400, "max_tokens",
         "at most"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 9}, 400, "temperature", ""),
        ({"model": MODEL, "messages": [], "stream": True}, 400, "messages", ""),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "logit_bias": {}}, 400, "logit_bias",
         "not supported"),
        ({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404, "model", "not served"),
        ({"model": MODEL, "prompt": [1, 99999]}, 400, "prompt", "outside vocabulary"),
        ({"model": MODEL, "prompt": "hi", "slo": {"type": "deadline"}}, 400, "slo.deadline.deadline_s", "required"),
        ({"model": MODEL, "prompt": "hi", "slo": {"type": "latency", "ttft_s": -1}}, 400, "slo.latency.ttft_s", ""),
        ({"model": MODEL, "prompt": "hi", "slo": {"type": "soon"}}, 400, "slo", ""),
    ],
)  # fmt: skip
async def test_bad_input_names_the_field(
    cloud_server: ServiceProcess, body: dict[str, object], status: int, param: str, says: str
) -> None:
    path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as s:
        async with s.post(cloud_server.url + path, json=body) as resp:
            err = (await resp.json())["error"]
    assert resp.status == status and err["param"] == param and says in err["message"]


async def test_slo_requests_are_accounted_as_service_gain(cloud_server: ServiceProcess) -> None:
    c = client(cloud_server)
    before = metric(cloud_server.url, 'edgeweave_cloud_slo_judged{type="deadline"}')
    slo = {"type": "deadline", "deadline_s": 600}
    r = await c.completions.create(
        model=MODEL, prompt="turn on", max_tokens=4, extra_body={"slo": slo, "ignore_eos": True}
    )
    assert r.usage is not None and r.usage.completion_tokens == 4
    assert metric(cloud_server.url, 'edgeweave_cloud_slo_judged{type="deadline"}') == before + 1
    assert metric(cloud_server.url, 'edgeweave_cloud_slo_met{type="deadline"}') >= 1
    assert metric(cloud_server.url, 'edgeweave_cloud_service_gain_tokens{type="deadline"}') >= 4


def test_finished_requests_are_logged_as_a_trace(cloud_server: ServiceProcess) -> None:
    rows = load_trace(cloud_server.log_path.parent / "requests.csv")
    assert len(rows) >= 5 and all(r.prompt_tokens > 0 and r.output_tokens > 0 for r in rows)


async def test_api_key_is_required(cloud_server: ServiceProcess) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(cloud_server.url + "/v1/models") as resp:
            assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_api_key"
        async with s.get(cloud_server.url + "/health") as resp:
            assert resp.status == 200


def test_the_coordinator_routes_to_it_as_a_cloud_endpoint(
    cloud_server: ServiceProcess, reference: dict[str, str], tmp_path: Path
) -> None:
    with LocalCluster(tmp_path) as cluster:
        cluster.start_coordinator(mdns=False, cloud=(("gpu", cloud_server.url + "/v1", KEY, MODEL),))
        req = urllib.request.Request(
            cluster.url + "/v1/chat/completions",
            data=json.dumps(
                {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": COMMANDS[1]}],
                    "max_tokens": 60,
                    "temperature": 0,
                }
            ).encode(),
            headers={"Authorization": f"Bearer {cluster.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            body = json.loads(resp.read())
            assert resp.headers["X-Edgeweave-Endpoint"] == "cloud:gpu"
    assert body["choices"][0]["message"]["content"] == reference[COMMANDS[1]]
    assert body["usage"]["completion_tokens"] > 0


async def test_logprobs_from_the_cloud_come_through_the_coordinator(
    cloud_server: ServiceProcess, tmp_path: Path
) -> None:
    """The cloud's logprobs, streamed to the coordinator with token ids, reach an ``openai`` client: the same
    tokens and alternatives, and the same values to 1e-4.  Not exactly: the engine computes a request in
    whatever batch and prefix-cache state it meets, which reorders float32 sums (logits move by ~1e-6 here,
    a log-softmax by at most twice that)."""
    question = [{"role": "user", "content": COMMANDS[1]}]
    direct = await client(cloud_server).chat.completions.create(
        model=MODEL, messages=question, max_tokens=12, temperature=0, logprobs=True, top_logprobs=2
    )
    with LocalCluster(tmp_path) as cluster:
        cluster.start_coordinator(mdns=False, cloud=(("gpu", cloud_server.url + "/v1", KEY, MODEL),))
        via = openai.AsyncOpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key)
        relayed = await via.chat.completions.create(
            model=MODEL, messages=question, max_tokens=12, temperature=0, logprobs=True, top_logprobs=2
        )
        streamed = [
            entry
            async for chunk in await via.chat.completions.create(
                model=MODEL, messages=question, max_tokens=12, temperature=0, logprobs=True, top_logprobs=2, stream=True
            )
            for choice in chunk.choices
            if choice.logprobs and choice.logprobs.content
            for entry in choice.logprobs.content
        ]

    def flat(entries: list) -> tuple[list[str], list[float]]:
        tokens = [t for e in entries for t in (e.token, *(a.token for a in e.top_logprobs))]
        return tokens, [v for e in entries for v in (e.logprob, *(a.logprob for a in e.top_logprobs))]

    want_tokens, want_values = flat(direct.choices[0].logprobs.content)
    for got in (relayed.choices[0].logprobs.content, streamed):
        tokens, values = flat(got)
        assert tokens == want_tokens and values == pytest.approx(want_values, abs=1e-4)
    assert len(want_tokens) == 12 * 3
