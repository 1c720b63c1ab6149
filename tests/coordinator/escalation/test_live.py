"""Escalation, n, uncertainty and /v1/embeddings through a real coordinator (a torch phone and the cloud),
asked with the official openai client."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator

import openai
import pytest

from edgeweave.cluster.cluster_files import LocalDevice, coordinator_toml
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.cluster.processes import ServiceProcess
from edgeweave.config import EdgeweaveConfig
from tests.cloud.test_server import COMMANDS, KEY, MODEL

# the gate scores every device answer with predictive entropy (>= 0) and escalates above -1: always
ESCALATION = (
    '[coordinator.escalation]\ngate = "uncertainty"\nthreshold = -1.0\n'
    'uncertainty = { method = "predictive_entropy", samples = 2, perturbations = 0, max_tokens = 4 }\n'
)
MESSAGES = [{"role": "user", "content": COMMANDS[2]}]


@pytest.fixture(scope="module")
def coordinator(cloud_server: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with LocalCluster(tmp_path_factory.mktemp("escalation")) as cluster:
        (phone,) = cluster.start_devices((LocalDevice("phone-1", "phone", "torch", threads=1, model=MODEL),))
        cloud = (("gpu", cloud_server.url + "/v1", KEY, MODEL),)
        cluster.start_coordinator(mdns=False, static=(phone.url,), cloud=cloud, tables=ESCALATION)
        cluster.wait_until(lambda up: "phone-1" in up, timeout_s=30)
        yield openai.OpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0)


def test_an_escalated_answer_comes_from_the_cloud_with_the_gate_score(coordinator: openai.OpenAI) -> None:
    raw = coordinator.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=12, temperature=0, extra_body={"prefer": "escalate"}
    )
    body = raw.parse()
    assert raw.headers["X-Edgeweave-Escalation"] == "escalated"
    assert float(raw.headers["X-Edgeweave-Gate-Score"]) >= 0.0
    assert body.system_fingerprint == "cloud:gpu" and body.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match="n"):
        coordinator.chat.completions.create(model=MODEL, messages=MESSAGES, n=2, extra_body={"prefer": "escalate"})


def test_n_choices_and_a_relayed_score(coordinator: openai.OpenAI) -> None:
    u = {"method": "predictive_entropy", "samples": 2, "perturbations": 0, "max_tokens": 4, "seed": 1}
    got = coordinator.chat.completions.create(
        model=MODEL, messages=MESSAGES, n=2, max_tokens=6, temperature=1.0, seed=3,
        extra_body={"prefer": "device", "uncertainty": u},
    )  # fmt: skip
    assert [c.index for c in got.choices] == [0, 1]
    score = got.model_extra["uncertainty"]
    assert score["method"] == "predictive_entropy" and math.isfinite(score["score"]) and score["samples"] == 2
    assert got.usage.model_extra["uncertainty_completion_tokens"] == score["completion_tokens"] > 0
    with pytest.raises(openai.BadRequestError, match="uncertainty"):
        coordinator.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_body={"uncertainty": {"method": "kle", "samples": 1}}
        )


@pytest.mark.slow  # ~11 s (MiniLM loads in the coordinator); the cloud's embeddings test runs the same response code
def test_embeddings_through_the_coordinator(coordinator: openai.OpenAI) -> None:
    got = coordinator.embeddings.create(model="all-minilm-l6-v2", input=["turn on the lights", "lights on"])
    a, b = (d.embedding for d in got.data)
    assert len(a) == 384 and abs(sum(x * x for x in a) - 1.0) < 1e-4  # float32 unit rows
    assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.5
    with pytest.raises(openai.NotFoundError, match="model"):
        coordinator.embeddings.create(model="text-embedding-3-small", input="x")


def test_cluster_files_take_further_tables() -> None:
    cfg = EdgeweaveConfig.model_validate(tomllib.loads(coordinator_toml("s" * 32, "k", tables=ESCALATION)))
    assert cfg.coordinator is not None and cfg.coordinator.escalation.threshold == -1.0
