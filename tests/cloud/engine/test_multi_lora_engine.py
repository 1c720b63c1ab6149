"""The engine serves requests of different LoRA adapters in one batch (S-LoRA / Punica style):
each answer equals the base model with its adapter merged, run alone."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from cloud.engine.async_engine import AsyncEngine
from cloud.engine.engine import EngineOptions, LLMEngine
from cloud.routes import HttpRequest, handle
from cloud.service import CloudState
from device.backends.torch_backend import TorchBackend, merge_adapter
from edgeweave.errors import UsageError
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.lora import ATTENTION_TARGETS, LoraAdapter
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.tokenizer import ByteTokenizer, ChatMessage
from tests.device.test_adapters import random_adapter

MODEL = "weave-home-device"
TOK = ByteTokenizer()
SYSTEM = "You control a home: kitchen, office, bedroom, garage. Lights, locks, fans, blinds, speakers. Tool calls only."
COMMANDS = ("dim the kitchen lights to 30%", "lock the front door", "set the garage fan to high", "close the blinds")
GREEDY = SamplingParams(max_tokens=16)
SHORT = SamplingParams(max_tokens=6)


def prompt(cmd: str, system: bool = False) -> list[int]:
    msgs = [ChatMessage("system", SYSTEM)] if system else []
    return TOK.render_chat([*msgs, ChatMessage("user", cmd)])


@pytest.fixture(scope="module")
def adapters() -> dict[str, LoraAdapter]:
    cfg = load_checkpoint(resolve_checkpoint(MODEL)).config
    # ranks and target modules differ: the routing holds None where an adapter leaves a layer alone
    return {
        "smith": random_adapter(cfg, seed=1, rank=8),
        "jones": random_adapter(cfg, seed=2, rank=4, targets=ATTENTION_TARGETS),
        "lee": random_adapter(cfg, seed=3, rank=16, targets=("v_proj", "up_proj", "down_proj")),
    }


def alone(adapter: LoraAdapter | None, cmd: str, params: SamplingParams = GREEDY) -> list[int]:
    model = load_checkpoint(resolve_checkpoint(MODEL))
    if adapter is not None:
        merge_adapter(model, adapter)
    return TorchBackend(model).generate(prompt(cmd), params).token_ids


def test_mixed_adapter_batch_equals_each_merged_model_alone(adapters: dict[str, LoraAdapter]) -> None:
    engine = LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=8))  # every prompt in one iteration, then mixed decodes
    for name, a in adapters.items():
        engine.add_adapter(name, a)
    assert engine.adapters == ("jones", "lee", "smith")
    names: list[str | None] = ["smith", None, "jones", "lee"]
    got = engine.generate([prompt(c) for c in COMMANDS], GREEDY, names)
    # greedy tokens: merged weights and base + delta differ by float32 rounding only (~1e-6 of the
    # logits), far below the gaps between this model's top tokens on these prompts
    want = [alone(adapters[n] if n else None, c) for n, c in zip(names, COMMANDS, strict=True)]
    assert got == want
    # each adapter changes its answer
    assert all(g != alone(None, c) for g, c, n in zip(got, COMMANDS, names, strict=True) if n)
    assert engine.stats().blocks_free == engine.stats().blocks_total


def test_prefix_cache_is_keyed_by_adapter(adapters: dict[str, LoraAdapter]) -> None:
    engine = LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=8))
    engine.add_adapter("smith", adapters["smith"])
    p = prompt(COMMANDS[0], system=True)
    engine.add_request("first", p, GREEDY, lora_adapter="smith")
    engine.step()
    engine.add_request("base", p, GREEDY)
    engine.add_request("same", p, GREEDY, lora_adapter="smith")
    engine.step()
    first, base, same = (engine.seqs[r].block_table for r in ("first", "base", "same"))
    full = (len(p) - 1) // engine.blocks.block_size
    assert full >= 5
    assert same[:full] == first[:full]  # the same adapter shares every full block
    assert not set(base) & set(first)  # the base model's KV of the same tokens is its own


def test_unknown_adapter_is_refused_naming_the_field(adapters: dict[str, LoraAdapter]) -> None:
    engine = LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=4))
    engine.add_adapter("smith", adapters["smith"])
    with pytest.raises(UsageError) as e:
        engine.add_request("x", prompt("hi"), GREEDY, lora_adapter="nobody")
    assert e.value.field == "lora_adapter" and "smith" in str(e.value)


def test_adapter_added_from_another_thread_serves_from_the_next_iteration(adapters: dict[str, LoraAdapter]) -> None:
    engine = LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=4))
    engine.add_request("base", prompt(COMMANDS[1]), SHORT)
    engine.step()
    t = threading.Thread(target=engine.add_adapter, args=("jones", adapters["jones"]))
    t.start()
    t.join()
    assert engine.adapters == ("jones",)
    engine.add_request("jones", prompt(COMMANDS[1]), SHORT, lora_adapter="jones")
    out: dict[str, list[int]] = {"base": list(engine.seqs["base"].generated), "jones": []}
    while engine.has_work():
        for t_out in engine.step():
            out[t_out.request_id].append(t_out.token_id)
    assert out["jones"] == alone(adapters["jones"], COMMANDS[1], SHORT)
    assert out["base"] == alone(None, COMMANDS[1], SHORT)


def test_service_serves_an_adapter_as_a_model_id(adapters: dict[str, LoraAdapter]) -> None:
    engine = LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=4))
    engine.add_adapter("smith", adapters["smith"])
    state = CloudState(AsyncEngine(engine), MODEL)

    async def call(method: str, path: str, body: object = None) -> tuple[int, dict]:
        resp = await handle(state, None, HttpRequest(method, path, "", json.dumps(body).encode() if body else b""))
        assert isinstance(resp.body, bytes)
        return resp.status, json.loads(resp.body)

    async def run() -> None:
        state.engine.start()
        try:
            status, listing = await call("GET", "/v1/models")
            assert status == 200 and [m["id"] for m in listing["data"]] == [MODEL, f"{MODEL}:smith"]
            req = {"model": f"{MODEL}:smith", "prompt": prompt(COMMANDS[0]), "max_tokens": 16, "temperature": 0}
            status, done = await call("POST", "/v1/completions", req)
            assert status == 200 and done["model"] == f"{MODEL}:smith"
            assert done["choices"][0]["text"] == TOK.decode(alone(adapters["smith"], COMMANDS[0]))
            status, err = await call("POST", "/v1/completions", {**req, "model": f"{MODEL}:nobody"})
            assert status == 404 and err["error"]["param"] == "model" and f"{MODEL}:smith" in err["error"]["message"]
        finally:
            state.engine.stop()

    asyncio.run(run())
