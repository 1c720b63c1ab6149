"""EngineSampler on a real engine in this process: n seeded answers with their tokens' logprobs, the prompt
shared through the prefix cache, p(True)'s fallback on a byte-level vocabulary; and the routes without an
embedder configured."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from cloud.engine.async_engine import AsyncEngine
from cloud.engine.engine import LLMEngine
from cloud.routes import HttpRequest, handle
from cloud.service import CloudState
from cloud.uq.sampler import EngineSampler
from edgeweave.config import EngineOptions
from edgeweave.uncertainty.p_true import NO_JUDGEMENT
from edgeweave.wire.protocol import Message

MODEL = "weave-home-cloud"
QUESTION = [Message(role="user", content="hello there, how are you?")]


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    e = AsyncEngine(LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=4)))
    e.start()
    yield e
    e.stop()


async def test_samples_are_real_seeded_generations_with_logprobs(engine: AsyncEngine) -> None:
    sampler = EngineSampler(engine)
    hits = engine.engine.blocks.hits
    batch = await sampler.sample(QUESTION, n=3, temperature=2.0, max_tokens=12, seed=4)
    assert len(batch.answers) == 3
    assert engine.engine.blocks.hits >= hits + 2  # answers 1 and 2 found the prompt's full block cached
    for a in batch.answers:
        assert a.finish_reason in ("stop", "length") and a.text
        assert 1 <= len(a.token_logprobs) <= 12 and all(lp <= 0.0 for lp in a.token_logprobs)
    assert batch.completion_tokens == sum(len(a.token_logprobs) for a in batch.answers)
    prompt = engine.engine.tokenizer.render_chat([])  # BOS and the assistant header around the turn
    assert batch.prompt_tokens == len(prompt) + 2 + len(QUESTION[0].content)  # byte tokens, counted once
    again = await sampler.sample(QUESTION, n=3, temperature=2.0, max_tokens=12, seed=4)
    # answer i is seeded 4 + i: the same draws again (logits equal up to batch rounding, see test_api)
    assert [a.text for a in again.answers] == [a.text for a in batch.answers]
    assert len({a.text for a in batch.answers}) > 1


async def test_p_true_without_a_true_token_is_no_judgement(engine: AsyncEngine) -> None:
    # the byte-level vocabulary spells "True" in four tokens: no single token is the word, so the
    # documented fallback answers; a BPE model (SmolLM2) reads its real p(True)
    assert await EngineSampler(engine).p_true(QUESTION, "fine, thanks") == NO_JUDGEMENT


async def test_without_an_embedder_there_is_no_embeddings_route_and_no_score(engine: AsyncEngine) -> None:
    state = CloudState(engine, MODEL, embedder=None)
    body = json.dumps({"model": "all-minilm-l6-v2", "input": "hi"}).encode()
    resp = await handle(state, None, HttpRequest("POST", "/v1/embeddings", "", body))
    assert resp.status == 404
    chat = {"model": MODEL, "messages": [m.model_dump() for m in QUESTION], "uncertainty": {}}
    resp = await handle(state, None, HttpRequest("POST", "/v1/chat/completions", "", json.dumps(chat).encode()))
    assert isinstance(resp.body, bytes) and resp.status == 400
    assert json.loads(resp.body)["error"]["param"] == "uncertainty"
