"""A migrated answer keeps its LoRA adapter: the model id ``weave-home-device:smith`` is served on a
device (llama.cpp with the GGUF LoRA) and on the cloud engine (multi-LoRA batch), and an answer
moved between them mid-stream has exactly the tokens of one generated on one tier, which differ
from the base model's (so both tiers really apply the adapter).

Greedy identity across runtimes: llama.cpp's logits with the adapter are within ~1e-2 of torch's
(tests/export/test_gguf_lora.py), far inside the gaps between this model's top tokens here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.engine.engine import EngineOptions, LLMEngine
from edgeweave.cluster.cluster_files import LocalDevice, cloud_toml, device_toml, write
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.cluster.processes import ServiceProcess, spawn
from edgeweave.generation.backends import load_backend
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.lora import LoraAdapter
from tests.conftest import DEVICE_MODEL
from tests.coordinator.disco.test_live import _answer
from tests.device.test_adapters import random_adapter

ADAPTED = f"{DEVICE_MODEL}:smith"
COMMAND = "dim the kitchen lights to 30% and lock the front door"
KEY = "adapter-cloud-key-0123456789"


@pytest.fixture(scope="module")
def adapter_dir(device_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_checkpoint(device_checkpoint).config
    return random_adapter(cfg, seed=5, rank=8).save(tmp_path_factory.mktemp("adapters") / "smith")


def test_an_adapter_answer_resumed_on_the_cloud_engine_continues_identically(adapter_dir: Path) -> None:
    """The light variant of the live test below, in process: k tokens on llama.cpp with the
    adapter, the rest resumed on the cloud engine's adapter, equals either tier alone."""
    params = SamplingParams(max_tokens=24)
    device = load_backend("llamacpp", DEVICE_MODEL, threads=1, adapter=adapter_dir)
    prompt = chat_prompt(device, COMMAND)
    on_device = device.generate(prompt, params).token_ids
    base = load_backend("llamacpp", DEVICE_MODEL, threads=1).generate(prompt, params).token_ids
    engine = LLMEngine.load(DEVICE_MODEL, EngineOptions(kv_cache_mb=4))
    engine.add_adapter("smith", LoraAdapter.load(adapter_dir))
    k = 8
    rest = SamplingParams(max_tokens=len(on_device) - k)
    (resumed,) = engine.generate([[*prompt, *on_device[:k]]], rest, ["smith"])
    (on_cloud,) = engine.generate([prompt], params, ["smith"])
    assert on_device[:k] + resumed == on_device == on_cloud
    assert on_device != base
    device.close()


@pytest.fixture(scope="module")
def hybrid(adapter_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A phone serving the adapter on llama.cpp and the cloud engine serving it, behind the coordinator."""
    tmp = tmp_path_factory.mktemp("adapter-cluster")
    adapters = f'adapters = [{{ name = "smith", path = {json.dumps(str(adapter_dir))} }}]\n'
    cloud_cfg = write(tmp / "cloud.toml", cloud_toml(DEVICE_MODEL, KEY, 8.0, extra_cloud=adapters))
    cloud: ServiceProcess = spawn("cloud", ["cloud", "serve", "--config", str(cloud_cfg)], tmp / "cloud.log")
    with LocalCluster(tmp) as cluster:
        phone_cfg = LocalDevice("phone-1", "phone", "llamacpp", threads=1)
        path = write(tmp / "phone-1.toml", device_toml(phone_cfg, cluster.secret, advertise=False) + adapters)
        phone = spawn("phone-1", ["device", "serve", "--config", str(path)], tmp / "phone-1.log")
        cluster.devices["phone-1"] = phone
        phone.wait_ready(120)
        cloud.wait_ready(120)
        cluster.start_coordinator(mdns=False, static=(phone.url,), cloud=(("gpu", cloud.url + "/v1", KEY, ADAPTED),))
        cluster.wait_until(lambda up: "phone-1" in up, timeout_s=30)
        yield cluster
    assert cloud.stop() == 0


@pytest.mark.slow
def test_a_migrated_adapter_answer_keeps_its_adapter(hybrid: LocalCluster) -> None:
    body = {"model": ADAPTED, "messages": [{"role": "user", "content": COMMAND}], "max_tokens": 40, "temperature": 0}
    on_cloud = _answer(hybrid.url, hybrid.api_key, body, "cloud:gpu").ids
    on_device = _answer(hybrid.url, hybrid.api_key, body, "device:phone-1").ids
    assert len(on_cloud) > 10 and on_device == on_cloud
    moved = _answer(hybrid.url, hybrid.api_key, body, "device:phone-1", migrate_after=5)
    assert moved.ids == on_cloud
    assert moved.endpoints[0] == "device:phone-1" and moved.endpoints[-1] == "cloud:gpu"
    base = _answer(hybrid.url, hybrid.api_key, {**body, "model": DEVICE_MODEL}, "device:phone-1").ids
    assert base != on_cloud
