"""The Ray Serve deployment: two CPU replicas of the engine behind one route."""

from __future__ import annotations

import collections
from collections.abc import Iterator

import openai
import pytest

from cloud.ray_serve import REPLICA_HEADER, deploy, shutdown
from edgeweave.cluster.processes import free_port
from edgeweave.config import CloudServerConfig

MODEL = "weave-home-cloud"
KEY = "ray-test-key-0123456789"


@pytest.fixture(scope="module")
def route() -> Iterator[str]:
    port = free_port()
    cfg = CloudServerConfig.model_validate(
        {
            "model": MODEL,
            "port": port,
            "engine": {"kv_cache_mb": 8},
            "ray": {"replicas": 2, "cpus_per_replica": 0.5},
        }
    )
    yield deploy(cfg, [KEY], port)
    shutdown()


def test_both_replicas_answer_through_one_route(route: str) -> None:
    c = openai.OpenAI(base_url=route + "/v1", api_key=KEY, max_retries=0)
    replicas: collections.Counter[str] = collections.Counter()
    answers = set()
    for _ in range(8):
        raw = c.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "lock the front door"}], max_tokens=40, temperature=0
        )
        replicas[raw.headers[REPLICA_HEADER]] += 1
        answers.add(raw.parse().choices[0].message.content)
    assert len(replicas) == 2, replicas
    assert answers == {'[{"call":"door.lock","door":"front"}]'}
    stream = c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "lock the front door"}], stream=True, temperature=0
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) in answers
    # n choices: the replica's routes are the aiohttp server's (cloud.routes), n included
    two = c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "lock the front door"}], n=2, max_tokens=40, temperature=0
    )
    (only,) = answers
    assert [(ch.index, ch.message.content) for ch in two.choices] == [(0, only), (1, only)]


def test_bad_input_and_keys_on_the_ray_route(route: str) -> None:
    c = openai.OpenAI(base_url=route + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * 600}])
    assert "context of 512" in str(e.value)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=route + "/v1", api_key="wrong", max_retries=0).models.list()
