"""Constrained decoding: whatever the model's logits, the output follows the request's grammar.

Random logits are the hardest model: every sampled answer must still be calls to the offered tools
with arguments valid under their JSON schemas (``required``, a named function, ``auto``), or JSON
valid under ``response_format``; an answer resumed after tokens generated elsewhere continues the
same grammar; a grammar that cannot be built, or resume tokens that break it, are refused by field.
Checked on the byte tokenizer and on SmolLM2's 49k-token BPE vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from cloud.agents.runtime import PLAN_FORMAT
from edgeweave.errors import UsageError
from edgeweave.generation.constrained import ConstrainedSampler, check_spec, grammar
from edgeweave.generation.sampling import SamplingParams
from edgeweave.generation.tools import JsonSchemaFormat, OutputSpec, ResponseFormat, parse_calls
from edgeweave.home.tools import TOOLS, tool_definitions
from edgeweave.models.tokenizer import ByteTokenizer


def sample(spec: OutputSpec, tokenizer: object, seed: int, resumed: list[int] | None = None, n: int = 3000) -> str:
    """Tokens drawn from random logits under the grammar until a stop token (or ``n`` tokens)."""
    params = SamplingParams(temperature=1.0, seed=seed, output=spec, max_tokens=n)
    sampler = ConstrainedSampler(params, tokenizer, resumed or [])  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    vocab = tokenizer.vocab_size  # type: ignore[attr-defined]
    out = list(resumed or [])
    stops = tokenizer.stop_ids  # type: ignore[attr-defined]
    for _ in range(n):
        logits = rng.normal(0.0, 3.0, vocab).astype(np.float32)
        # lean towards stopping and closing strings so that random walks end within n tokens
        logits[sorted(stops)] += 4.0
        token = sampler(logits)
        if token in stops:
            return tokenizer.decode(out)  # type: ignore[attr-defined]
        out.append(token)
    pytest.fail(f"no stop within {n} tokens: {tokenizer.decode(out)!r}")  # type: ignore[attr-defined]


def assert_valid_calls(text: str, names: set[str]) -> None:
    content, calls = parse_calls(text)
    assert calls and content is None, text
    for call in calls:
        assert call.name in names
        args: type[BaseModel] = TOOLS[call.name].args
        args.model_validate(json.loads(call.arguments))  # raises if the grammar let a bad argument through


@pytest.mark.parametrize("seed", range(6))
def test_required_calls_are_always_valid_under_their_schemas(seed: int) -> None:
    tok = ByteTokenizer()
    spec = OutputSpec(tools=tool_definitions(), tool_choice="required", parallel_tool_calls=seed % 2 == 0)
    text = sample(spec, tok, seed)
    assert_valid_calls(text, set(TOOLS))
    if not spec.parallel_tool_calls:
        assert len(parse_calls(text)[1]) == 1


def test_a_named_choice_calls_only_that_function() -> None:
    tok = ByteTokenizer()
    choice = {"type": "function", "function": {"name": "door_lock"}}
    spec = OutputSpec.model_validate({"tools": [t.model_dump() for t in tool_definitions()], "tool_choice": choice})
    for seed in range(3):
        assert_valid_calls(sample(spec, tok, seed), {"door_lock"})


def test_auto_is_text_or_calls() -> None:
    tok = ByteTokenizer()
    spec = OutputSpec(tools=tool_definitions(), tool_choice="auto")
    for seed in range(8):
        text = sample(spec, tok, seed)
        content, calls = parse_calls(text)
        if calls:
            assert_valid_calls(text, set(TOOLS))
        else:
            assert text and not text.startswith("<")


@pytest.mark.parametrize("seed", range(4))
def test_response_format_json_schema_and_object(seed: int) -> None:
    tok = ByteTokenizer()
    plan = json.loads(sample(OutputSpec(response_format=PLAN_FORMAT), tok, seed))
    assert set(plan) == {"steps"} and 1 <= len(plan["steps"]) <= 12 and all(isinstance(s, str) for s in plan["steps"])
    obj = json.loads(sample(OutputSpec(response_format=ResponseFormat(type="json_object")), tok, seed))
    assert isinstance(obj, dict)


def test_a_resumed_answer_continues_the_same_grammar() -> None:
    tok = ByteTokenizer()
    spec = OutputSpec(tools=tool_definitions(), tool_choice="required")
    head = tok.encode('<tool_call>{"name":"lights_dim","arguments":{"room":"kit')
    text = sample(spec, tok, 0, resumed=head)
    assert text.startswith('<tool_call>{"name":"lights_dim","arguments":{"room":"kitchen"')
    assert_valid_calls(text, {"lights_dim"})
    with pytest.raises(UsageError, match="resume_tokens"):
        ConstrainedSampler(SamplingParams(output=spec), tok, tok.encode('{"name"'))


def test_bad_specs_are_refused_by_field() -> None:
    bad = OutputSpec(
        response_format=ResponseFormat(
            type="json_schema",
            json_schema=JsonSchemaFormat(name="x", schema={"type": "object", "minProperties": "two"}),
        )
    )
    with pytest.raises(UsageError) as err:
        check_spec(bad)
    assert err.value.field == "response_format"
    named = OutputSpec.model_validate(
        {"tools": [t.model_dump() for t in tool_definitions()[:2]], "tool_choice": {"function": {"name": "nope"}}}
    )
    with pytest.raises(UsageError, match="tool_choice"):
        grammar(named)
    with pytest.raises(ValidationError, match="json_schema"):
        ResponseFormat(type="json_schema")


def test_the_grammar_works_on_a_bpe_vocabulary() -> None:
    import gguf

    from edgeweave.models.bundled import smollm2_gguf
    from edgeweave.models.gguf_checkpoint import gguf_config
    from edgeweave.models.gguf_vocab import gguf_tokenizer

    reader = gguf.GGUFReader(smollm2_gguf())
    tok = gguf_tokenizer(reader, gguf_config(reader, "smollm2"), "smollm2")
    spec = OutputSpec(tools=tool_definitions(), tool_choice="required")
    for seed in range(2):
        assert_valid_calls(sample(spec, tok, seed), set(TOOLS))
