"""DiSCo end to end on real processes: a phone daemon and the cloud engine behind the coordinator.

Answers move mid-stream (forced, for cost, on a dead device) with exactly the
tokens of an unmigrated greedy run; races keep the first token; every request's
cost adds up to what the coordinator accounts per tier.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.cluster.processes import ServiceProcess
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.client import BlockingClient
from edgeweave.wire.protocol import PrefillRequest
from tests.cloud.test_server import COMMANDS, KEY, MODEL

BODY = {"model": MODEL, "messages": [{"role": "user", "content": COMMANDS[2]}], "max_tokens": 60, "temperature": 0}
Hybrid = tuple[LocalCluster, ServiceProcess]


def _hybrid(cloud_server: ServiceProcess, tmp_path: Path, disco: str = "") -> Iterator[Hybrid]:
    """A coordinator with a phone serving the cloud model on the torch backend, and the cloud."""
    with LocalCluster(tmp_path) as cluster:
        (phone,) = cluster.start_devices((LocalDevice("phone-1", "phone", "torch", threads=1, model=MODEL),))
        cloud = (("gpu", cloud_server.url + "/v1", KEY, MODEL),)
        cluster.start_coordinator(mdns=False, static=(phone.url,), cloud=cloud, disco=disco)
        cluster.wait_until(lambda up: "phone-1" in up, timeout_s=30)
        yield cluster, phone


@pytest.fixture()
def hybrid(cloud_server: ServiceProcess, tmp_path: Path) -> Iterator[Hybrid]:
    yield from _hybrid(cloud_server, tmp_path)


@pytest.fixture()
def priced(cloud_server: ServiceProcess, tmp_path: Path) -> Iterator[Hybrid]:
    """Cloud tokens dear, the phone's energy cheap, a slow reader, a budget that races every prompt, and
    a device TTFT prior near the phone's (its own fit needs answers at two prompt lengths)."""
    disco = (
        "budget = 1.0\nusd_per_output_token = 1e-3\nusd_per_joule = 1e-9\nreading_tok_s = 1.0\n"
        "device_prefill_tok_s = 5000.0\n"
    )
    yield from _hybrid(cloud_server, tmp_path, disco)


@dataclass
class Streamed:
    ids: list[int] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)  # per token
    cost_usd: float | None = None
    prompt_tokens: int = 0


def _stream(
    url: str,
    key: str,
    body: dict[str, object],
    pin: str | None = None,
    migrate_after: int | None = None,
) -> Iterator[Streamed]:
    """A streamed chat answer through the coordinator, as it grows, one chunk at a time."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if pin is not None:
        headers["X-Edgeweave-Endpoint"] = pin
    if migrate_after is not None:
        headers["X-Edgeweave-Migrate-After"] = str(migrate_after)
    body = {**body, "stream": True, "return_token_ids": True, "stream_options": {"include_usage": True}}
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), headers=headers)
    try:
        r = urllib.request.urlopen(req)
    except urllib.error.HTTPError as e:
        raise AssertionError(f"HTTP {e.code}: {e.read().decode()}") from None
    out = Streamed()
    with r:
        for line in r:
            data = line.decode().removeprefix("data: ").strip()
            if not data or data == "[DONE]":
                continue
            chunk = json.loads(data)
            assert "error" not in chunk, chunk
            if chunk.get("usage"):
                out.cost_usd, out.prompt_tokens = chunk["usage"]["cost_usd"], chunk["usage"]["prompt_tokens"]
            for choice in chunk["choices"]:
                new = choice["delta"].get("token_ids") or []
                out.ids += new
                out.endpoints += [chunk["system_fingerprint"]] * len(new)
            yield out


def _answer(url: str, key: str, body: dict[str, object], pin: str | None = None, **kw: int) -> Streamed:
    return deque(_stream(url, key, body, pin, **kw), maxlen=1)[0]


def _metrics(cluster: LocalCluster) -> str:
    return urllib.request.urlopen(cluster.url + "/metrics").read().decode()


def test_an_answer_resumes_on_the_device_or_the_cloud_with_the_same_tokens(hybrid: Hybrid) -> None:
    """The coordinator forwards resume_tokens to either endpoint and streams token ids from both;
    greedy continuations match the unmigrated answer."""
    cluster, _ = hybrid
    full = _answer(cluster.url, cluster.api_key, BODY, "cloud:gpu").ids
    assert len(full) > 8
    k = len(full) // 3
    rest = {**BODY, "resume_tokens": full[:k], "max_tokens": 60 - k}
    for pin in ("device:phone-1", "cloud:gpu"):
        assert _answer(cluster.url, cluster.api_key, rest, pin).ids == full[k:], pin
    with pytest.raises(AssertionError, match=r'HTTP 400: .*"param": "prefer"'):
        _answer(cluster.url, cluster.api_key, {**BODY, "prefer": "phone"})


def test_a_live_answer_migrates_both_ways_without_losing_or_repeating_a_token(hybrid: Hybrid) -> None:
    cluster, _ = hybrid
    full = _answer(cluster.url, cluster.api_key, BODY, "cloud:gpu").ids
    for start, other in (("device:phone-1", "cloud:gpu"), ("cloud:gpu", "device:phone-1")):
        got = _answer(cluster.url, cluster.api_key, BODY, start, migrate_after=5)
        assert got.ids == full, start
        assert got.endpoints[0] == start and got.endpoints[-1] == other and got.endpoints.index(other) >= 5
    assert re.search(r'edgeweave_coordinator_migrations_total\{reason="forced",source="device:phone-1",'
                     r'target="cloud:gpu"\} 1.0', _metrics(cluster))  # fmt: skip


def test_killing_the_device_mid_answer_completes_it_from_the_cloud(hybrid: Hybrid) -> None:
    cluster, phone = hybrid
    body = {**BODY, "ignore_eos": True}  # 60 tokens: the cloud fixture holds 128 in all
    full = _answer(cluster.url, cluster.api_key, body, "cloud:gpu").ids
    got = Streamed()
    for got in _stream(cluster.url, cluster.api_key, body, "device:phone-1"):
        if len(got.ids) == 3:
            phone.kill()
    assert got.ids == full and len(got.ids) == 60
    assert got.endpoints[0] == "device:phone-1" and got.endpoints[-1] == "cloud:gpu"


def test_disco_races_moves_dear_answers_to_the_device_and_accounts_every_request(priced: Hybrid) -> None:
    cluster, _ = priced
    url, key = cluster.url, cluster.api_key
    body = {**BODY, "ignore_eos": True}
    full = _answer(url, key, body, "cloud:gpu")  # pinned: never moved
    assert full.endpoints == ["cloud:gpu"] * 60
    answers = [full] + [_answer(url, key, {**body, "prefer": "device"}) for _ in range(10)]  # lengths known now
    assert all(a.ids == full.ids and set(a.endpoints) == {"device:phone-1"} for a in answers[1:])
    kept = _answer(url, key, {**body, "prefer": "cloud"})  # a preference holds: no cost move off it
    assert kept.ids == full.ids and set(kept.endpoints) == {"cloud:gpu"}
    moved = _answer(url, key, {**body, "prefer": "cloud", "allow_cost_moves": True})
    assert moved.ids == full.ids  # no token lost or repeated
    assert moved.endpoints[0] == "cloud:gpu" and moved.endpoints[-1] == "device:phone-1"
    raced = _answer(url, key, body)  # budget 1.0: every prompt races both tiers (a cloud win moves too)
    assert raced.ids == full.ids
    answers += [kept, moved, raced]
    text = _metrics(cluster)
    assert re.search(r'edgeweave_coordinator_migrations_total\{reason="cost",source="cloud:gpu",'
                     r'target="device:phone-1"\} [12].0', text), text  # fmt: skip
    assert re.search(r'edgeweave_coordinator_routes_total\{answered_by="(device|cloud)",plan="race"\} 1.0', text)
    assert re.search(r'edgeweave_coordinator_routes_total\{answered_by="cloud",plan="pinned"\} 1.0', text)
    spent = sum(float(v) for v in re.findall(r'^edgeweave_coordinator_cost_usd_total\{tier="\w+"\} (\S+)$', text, re.M))
    per_request = [a.cost_usd for a in answers]
    assert all(c is not None and c > 0 for c in per_request)
    assert spent == pytest.approx(sum(per_request), rel=1e-9)  # the budget is the sum of the requests' costs
    assert full.prompt_tokens > 0 and full.cost_usd == pytest.approx(full.prompt_tokens * 0.15e-6 + 60 * 1e-3)
    assert moved.cost_usd is not None and moved.cost_usd < 0.5 * full.cost_usd  # moving to the cheap phone paid


def _post(url: str, body: dict[str, object], key: str) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.slow
def test_a_warmed_endpoint_resumes_with_the_same_tokens_prefilling_only_the_rest(
    hybrid: Hybrid,
    cloud_server: ServiceProcess,
) -> None:
    """``POST /v1/prefill`` on the phone and on the cloud (what a warm's rounds call), then the answer
    resumed there: the same greedy tokens, and the phone reports the warmed context as reused."""
    cluster, phone = hybrid
    full = _answer(cluster.url, cluster.api_key, BODY, "cloud:gpu").ids
    k = len(full) // 2
    context = {"model": MODEL, "messages": BODY["messages"], "resume_tokens": full[:k]}
    first, second = (_post(cloud_server.url + "/v1/prefill", context, KEY) for _ in range(2))
    assert first[0] == 200 and second[0] == 200, (first, second)
    n = int(first[1]["prompt_tokens"])  # type: ignore[call-overload]
    assert n > k and second[1]["prompt_tokens"] == n and int(second[1]["cached_tokens"]) > 0  # type: ignore[call-overload]
    status, bad = _post(cloud_server.url + "/v1/prefill", {**context, "model": "nope"}, KEY)
    assert status == 404 and bad["error"]["param"] == "model"  # type: ignore[index]
    status, bad = _post(cloud_server.url + "/v1/prefill", {"model": MODEL}, KEY)
    assert status == 400 and "prompt" in json.dumps(bad)
    device = BlockingClient(phone.url, key=ClusterKey(cluster.secret.encode()))
    warmed = device.prefill(PrefillRequest.model_validate(context))
    assert warmed.prompt_tokens == n and warmed.cached_tokens < k  # a fresh context (its first tokens may match)
    rest = {**BODY, "resume_tokens": full[:k], "max_tokens": 60 - k}
    for pin in ("device:phone-1", "cloud:gpu"):
        assert _answer(cluster.url, cluster.api_key, rest, pin).ids == full[k:], pin
    reused = re.search(
        r'edgeweave_coordinator_cached_tokens_total\{endpoint="device:phone-1"\} (\S+)', _metrics(cluster)
    )
    assert reused is not None and float(reused.group(1)) >= n - 1  # all but (at most) the last context token
