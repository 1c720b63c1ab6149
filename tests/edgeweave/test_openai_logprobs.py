"""OpenAI's logprobs at the front door: parsed into SamplingParams.logprobs, formatted from real torch
tokens in OpenAI's shapes (chat and completions, streaming and not), read back by the official client
over real HTTP; bad values are a 400 naming the field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from device.backends.torch_backend import TorchBackend
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.logprobs import TokenLogprob
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.tokenizer import ChatMessage
from edgeweave.serving.http_errors import ApiError, error_middleware, parse_body, parse_json
from edgeweave.serving.openai_serving import Answer, Delta, respond
from edgeweave.wire.openai_api import ChatCompletionRequest, CompletionRequest

COMMAND = "dim the kitchen lights to 30%"
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return TorchBackend.load(resolve_checkpoint("weave-home-device"))


@dataclass
class BackendAnswer(Answer):
    """An answer produced by a backend in this process."""

    backend: TorchBackend | None = None
    ids: list[int] = field(default_factory=list)
    params: SamplingParams = field(default_factory=SamplingParams)

    async def deltas(self) -> AsyncIterator[Delta]:
        assert self.backend is not None
        self.prompt_tokens = len(self.ids)
        for ev in self.backend.stream(self.ids, self.params):
            self.completion_tokens += 1
            self.finish_reason = ev.finish_reason
            yield Delta(ev.text, ev.token_id, ev.logprob)


@pytest.fixture
async def client(backend: TorchBackend) -> AsyncIterator[openai.AsyncOpenAI]:
    async def serve(
        request: web.Request, req: ChatCompletionRequest | CompletionRequest, ids: list[int]
    ) -> web.StreamResponse:
        params = req.sampling(req.max_tokens or MAX_TOKENS)
        answer = BackendAnswer(endpoint="test:torch", backend=backend, ids=ids, params=params)
        chat = isinstance(req, ChatCompletionRequest)
        return await respond(request, answer, req.model, chat, req.stream, req.include_usage, lambda first: None)

    async def chat(request: web.Request) -> web.StreamResponse:
        req = await parse_body(request, ChatCompletionRequest)
        messages = [m.to_message() for m in req.messages]
        return await serve(
            request, req, backend.tokenizer.render_chat([ChatMessage(m.role, m.content) for m in messages])
        )

    async def completions(request: web.Request) -> web.StreamResponse:
        req = await parse_body(request, CompletionRequest)
        assert isinstance(req.prompt, str)
        return await serve(request, req, backend.tokenize(req.prompt, add_bos=True))

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    async with TestServer(app) as srv:
        yield openai.AsyncOpenAI(base_url=str(srv.make_url("/v1")), api_key="unused", max_retries=0)


def _want(backend: TorchBackend, ids: list[int], top: int) -> list[TokenLogprob]:
    events = backend.stream(ids, SamplingParams(max_tokens=MAX_TOKENS, logprobs=top))
    return [ev.logprob for ev in events if ev.logprob is not None]


@pytest.mark.parametrize(
    ("body", "k"),
    [
        ({}, None),
        ({"logprobs": False}, None),
        ({"logprobs": True}, 0),
        ({"logprobs": True, "top_logprobs": 0}, 0),
        ({"logprobs": True, "top_logprobs": 20}, 20),
    ],
)
def test_chat_logprobs_parse_into_sampling(body: dict[str, object], k: int | None) -> None:
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}).encode()
    assert parse_json(raw, ChatCompletionRequest).sampling(8).logprobs == k


@pytest.mark.parametrize(("body", "k"), [({}, None), ({"logprobs": 0}, 0), ({"logprobs": 5}, 5)])
def test_completion_logprobs_parse_into_sampling(body: dict[str, object], k: int | None) -> None:
    raw = json.dumps({"model": "m", "prompt": "hi", **body}).encode()
    assert parse_json(raw, CompletionRequest).sampling(8).logprobs == k


@pytest.mark.parametrize(
    ("model", "body", "param"),
    [
        (ChatCompletionRequest, {"top_logprobs": 3}, "top_logprobs"),
        (ChatCompletionRequest, {"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
        (ChatCompletionRequest, {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        (ChatCompletionRequest, {"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        (ChatCompletionRequest, {"logprobs": 3}, "logprobs"),
        (CompletionRequest, {"logprobs": 6}, "logprobs"),
        (CompletionRequest, {"logprobs": -1}, "logprobs"),
        (CompletionRequest, {"logprobs": True}, "logprobs"),
        (CompletionRequest, {"logprobs": 2, "top_logprobs": 2}, "top_logprobs"),
    ],
)
def test_bad_logprobs_are_a_400_naming_the_field(
    model: type[ChatCompletionRequest | CompletionRequest], body: dict[str, object], param: str
) -> None:
    base = {"messages": [{"role": "user", "content": "hi"}]} if model is ChatCompletionRequest else {"prompt": "hi"}
    with pytest.raises(ApiError) as err:
        parse_json(json.dumps({"model": "m", **base, **body}).encode(), model)
    assert err.value.status == 400 and err.value.body.param == param, err.value.body
    assert err.value.body.message.startswith(param)


async def test_chat_logprobs_through_the_openai_client(client: openai.AsyncOpenAI, backend: TorchBackend) -> None:
    messages = [{"role": "user", "content": COMMAND}]
    want = _want(backend, chat_prompt(backend, COMMAND), 3)
    got = await client.chat.completions.create(
        model="m", messages=messages, max_tokens=MAX_TOKENS, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = got.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    content = choice.logprobs.content
    assert [(t.token, t.logprob, t.bytes) for t in content] == [(w.token, w.logprob, w.bytes) for w in want]
    for t, w in zip(content, want, strict=True):
        assert [(a.token, a.logprob, a.bytes) for a in t.top_logprobs] == [
            (a.token, a.logprob, a.bytes) for a in w.top_logprobs
        ]
    assert "".join(t.token for t in content) == choice.message.content  # byte tokens, ASCII answer

    stream = await client.chat.completions.create(
        model="m", messages=messages, max_tokens=MAX_TOKENS, temperature=0, logprobs=True, top_logprobs=3, stream=True
    )
    streamed = []
    async for chunk in stream:
        for c in chunk.choices:
            if c.logprobs is not None and c.logprobs.content is not None:
                assert len(c.logprobs.content) == 1  # one token per chunk
                assert c.logprobs.content[0].token == (c.delta.content or "")
                streamed += c.logprobs.content
    assert [t.model_dump() for t in streamed] == [t.model_dump() for t in content]

    plain = await client.chat.completions.create(model="m", messages=messages, max_tokens=MAX_TOKENS)
    assert plain.choices[0].logprobs is None
    stream = await client.chat.completions.create(model="m", messages=messages, max_tokens=MAX_TOKENS, stream=True)
    chunks = [c.logprobs async for chunk in stream for c in chunk.choices]
    assert len(chunks) >= 2 and all(lp is None for lp in chunks)


async def test_completion_logprobs_through_the_openai_client(client: openai.AsyncOpenAI, backend: TorchBackend) -> None:
    want = _want(backend, backend.tokenize(COMMAND, add_bos=True), 2)
    got = await client.completions.create(model="m", prompt=COMMAND, max_tokens=MAX_TOKENS, temperature=0, logprobs=2)
    lp = got.choices[0].logprobs
    assert lp is not None and lp.tokens is not None and lp.top_logprobs is not None and lp.text_offset is not None
    assert lp.tokens == [w.token for w in want] and lp.token_logprobs == [w.logprob for w in want]
    for top, w in zip(lp.top_logprobs, want, strict=True):
        # OpenAI's shape: the k alternatives and the chosen token, which greedy makes the first alternative
        alternatives = [w, *w.top_logprobs]
        assert top == {a.token: max(b.logprob for b in alternatives if b.token == a.token) for a in alternatives}
    text = got.choices[0].text
    assert lp.text_offset == [len("".join(lp.tokens[:i])) for i in range(len(lp.tokens))]
    assert "".join(lp.tokens) == text

    stream = await client.completions.create(
        model="m", prompt=COMMAND, max_tokens=MAX_TOKENS, temperature=0, logprobs=2, stream=True
    )
    tokens, offsets = [], []
    async for chunk in stream:
        for c in chunk.choices:
            if c.logprobs is not None:
                assert c.logprobs.tokens is not None and c.logprobs.text_offset is not None
                tokens += c.logprobs.tokens
                offsets += c.logprobs.text_offset
    assert tokens == lp.tokens and offsets == lp.text_offset

    plain = await client.completions.create(model="m", prompt=COMMAND, max_tokens=MAX_TOKENS)
    assert plain.choices[0].logprobs is None


async def test_bad_logprobs_over_http_name_the_field(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], top_logprobs=3, max_tokens=4
        )
    assert err.value.param == "top_logprobs"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as err:
        await client.completions.create(model="m", prompt="hi", logprobs=6, max_tokens=4)
    assert err.value.param == "logprobs"  # type: ignore[attr-defined]
