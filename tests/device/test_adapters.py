"""A device serves each configured LoRA adapter as model ``<name>:<adapter>``: on torch (merged),
on llama.cpp (the exported GGUF LoRA on its own context), refused on ExecuTorch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import torch
from aiohttp.test_utils import TestServer

from coordinator.cluster.device_client import DeviceClient
from device.daemon import load_workers
from device.server import create_app
from device.worker import ModelWorker
from edgeweave.config import AdapterRef, DeviceConfig, ModelSpec
from edgeweave.errors import UsageError
from edgeweave.export.cache import runtime_file
from edgeweave.generation.backends import load_backend
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.config import ModelConfig
from edgeweave.models.lora import TARGETS, LoraAdapter, LoraConfig
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.protocol import DeviceInfo, GenerateRequest, TokenMessage
from tests.conftest import DEVICE_MODEL

KEY = ClusterKey(b"device-test-cluster-secret-000")
COMMAND = "turn off the bedroom lights"
GREEDY = SamplingParams(max_tokens=24)


def random_adapter(cfg: ModelConfig, seed: int, rank: int = 8, targets: tuple[str, ...] = TARGETS) -> LoraAdapter:
    """PEFT's init, then B random too (zero B is the identity), large enough to change greedy answers."""
    adapter = LoraAdapter.init(
        cfg, LoraConfig(rank=rank, alpha=2.0 * rank, target_modules=targets), "weave-home-device", seed
    )
    gen = torch.Generator().manual_seed(seed + 1)
    for path, (a, b) in adapter.weights.items():
        adapter.weights[path] = (a, torch.randn(b.shape, generator=gen) * 0.3)
    return adapter


@pytest.fixture(scope="module")
def adapter_dir(device_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_checkpoint(device_checkpoint).config
    return random_adapter(cfg, seed=11, rank=8).save(tmp_path_factory.mktemp("adapters") / "smith")


@pytest.fixture(scope="module")
def workers(adapter_dir: Path) -> Iterator[list[ModelWorker]]:
    spec = ModelSpec(
        model=DEVICE_MODEL, backend="llamacpp", threads=1, adapters=[AdapterRef(name="smith", path=adapter_dir)]
    )
    ws = load_workers(DeviceConfig(id="phone-t", kind="phone", models=[spec]))
    yield ws
    for w in ws:
        w.close()


async def test_daemon_serves_the_adapter_as_a_model_id(workers: list[ModelWorker], adapter_dir: Path) -> None:
    assert [w.name for w in workers] == [DEVICE_MODEL, f"{DEVICE_MODEL}:smith"]
    cfg = DeviceConfig(id="phone-t", kind="phone", models=[workers[0].spec])
    torch_adapted = load_backend("torch", DEVICE_MODEL, adapter=adapter_dir)  # the other tier's way: merged
    prompt = chat_prompt(torch_adapted, COMMAND)
    want = torch_adapted.generate(prompt, GREEDY).token_ids
    async with TestServer(create_app(cfg, KEY, workers)) as srv, aiohttp.ClientSession() as session:
        client = DeviceClient(session, KEY, str(srv.make_url("")).rstrip("/"))
        info = await client.get("/v1/info", DeviceInfo, 5)
        assert [m.name for m in info.models] == [DEVICE_MODEL, f"{DEVICE_MODEL}:smith"]
        answers = {}
        for model in (DEVICE_MODEL, f"{DEVICE_MODEL}:smith"):
            async with client.generate(GenerateRequest(model=model, prompt=prompt, sampling=GREEDY)) as events:
                answers[model] = [ev.id for ev in [e async for e in events] if isinstance(ev, TokenMessage)]
    # greedy on llama.cpp (delta added at run time) equals torch (merged): logits agree to ~1e-2
    # (tests/export/test_gguf_lora.py), far inside this model's gaps between its top tokens
    assert answers[f"{DEVICE_MODEL}:smith"] == want
    assert answers[DEVICE_MODEL] != want  # the base worker has no adapter


def test_executorch_refuses_adapters(adapter_dir: Path) -> None:
    with pytest.raises(UsageError) as e:
        load_backend("executorch", DEVICE_MODEL, adapter=adapter_dir)
    assert e.value.field == "adapters"


def test_llamacpp_adapter_needs_the_checkpoint_not_a_gguf(adapter_dir: Path, device_checkpoint: Path) -> None:
    with pytest.raises(UsageError) as e:
        load_backend("llamacpp", runtime_file(device_checkpoint, "gguf"), adapter=adapter_dir)
    assert e.value.field == "adapters"


def test_an_adapter_name_given_twice_is_refused(adapter_dir: Path) -> None:
    twice = [AdapterRef(name="smith", path=adapter_dir)] * 2
    spec = ModelSpec(model=DEVICE_MODEL, backend="torch", adapters=twice)
    with pytest.raises(UsageError) as e:
        load_workers(DeviceConfig(id="phone-t", kind="phone", models=[spec]))
    assert e.value.field == "adapters"
