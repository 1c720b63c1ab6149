"""Logprobs end to end on real processes: the official ``openai`` client asks the coordinator for
``logprobs=True, top_logprobs=2`` on chat completions, streaming and not, served by device daemons,
and gets OpenAI's shape; an answer moved mid-stream to another device keeps one logprob per token."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster, prepare_models

MODEL = "weave-home-device"
PROFILES = (
    LocalDevice("torch-a", "phone", "torch", threads=1),
    LocalDevice("torch-b", "jetson", "torch", threads=1),
)
PIN = {"X-Edgeweave-Endpoint": "device:torch-a"}
# The target of a move computes the moved positions' logits in one prefill instead of one decode step
# each: float32 sums in another order, a relative error of a few float32 epsilons (~1e-7) times the
# depth of these tiny models on any x86 CPU; 1e-3 on a log-probability is far above that.
MOVED_ABS = 1e-3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    prepare_models(PROFILES)
    with LocalCluster(tmp_path_factory.mktemp("logprobs")) as c:
        devices = c.start_devices(PROFILES)
        c.start_coordinator(mdns=False, static=tuple(d.url for d in devices))
        c.wait_until(lambda up: up == {p.id for p in PROFILES}, timeout_s=30)
        yield c


def client(cluster: LocalCluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0)


def ask(cluster: LocalCluster, **kw: object) -> object:
    return client(cluster).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "lock the back door"}],
        temperature=0,
        max_tokens=16,
        logprobs=True,
        top_logprobs=2,
        **kw,  # type: ignore[arg-type]
    )


def test_chat_logprobs_have_openais_shape_streaming_or_not(cluster: LocalCluster) -> None:
    full = ask(cluster, extra_headers=PIN)
    content = full.choices[0].logprobs.content  # type: ignore[attr-defined]
    assert len(content) == full.usage.completion_tokens > 0  # type: ignore[attr-defined]
    assert "".join(e.token for e in content) == full.choices[0].message.content  # type: ignore[attr-defined]
    for e in content:
        assert e.logprob <= 0 and len(e.top_logprobs) == 2
        assert e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob
        assert (e.token, e.logprob) == (e.top_logprobs[0].token, e.top_logprobs[0].logprob)  # greedy: the likeliest
    streamed = []
    for chunk in ask(cluster, stream=True, extra_headers=PIN):  # type: ignore[attr-defined]
        for choice in chunk.choices:
            streamed += choice.logprobs.content if choice.logprobs and choice.logprobs.content else []
    # the same device computes the same figures: exact
    assert [(e.token, e.logprob, [t.logprob for t in e.top_logprobs]) for e in streamed] == [
        (e.token, e.logprob, [t.logprob for t in e.top_logprobs]) for e in content
    ]


def test_logprobs_survive_a_migration(cluster: LocalCluster) -> None:
    reference = ask(cluster, extra_headers=PIN).choices[0].logprobs.content  # type: ignore[attr-defined]
    entries, served_by = [], []
    headers = {**PIN, "X-Edgeweave-Migrate-After": "4"}
    for chunk in ask(cluster, stream=True, extra_headers=headers):  # type: ignore[attr-defined]
        for choice in chunk.choices:
            new = choice.logprobs.content if choice.logprobs and choice.logprobs.content else []
            entries += new
            served_by += [chunk.system_fingerprint] * len(new)
    assert served_by[0] == "device:torch-a" and served_by[-1] == "device:torch-b"
    assert [e.token for e in entries] == [e.token for e in reference]  # none lost or repeated
    for got, want in zip(entries, reference, strict=True):
        assert got.logprob == pytest.approx(want.logprob, abs=MOVED_ABS)
        assert [t.token for t in got.top_logprobs] == [t.token for t in want.top_logprobs]
