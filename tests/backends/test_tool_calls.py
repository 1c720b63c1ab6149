"""Constrained tool calls on the device runtimes: every backend samples through the one constrained
sampler, so weave-agent-device answers the same valid call on torch, llama.cpp and ExecuTorch, and the
real SmolLM2-135M-Instruct on llama.cpp (its prompt declaring the tools in the Hermes format) answers
a call valid under the schemas."""

from __future__ import annotations

import json

import pytest

from edgeweave.generation.backends import BACKEND_KINDS, load_backend
from edgeweave.generation.sampling import SamplingParams
from edgeweave.generation.tools import OutputSpec, parse_calls
from edgeweave.home.tools import TOOLS, tool_definitions
from edgeweave.models.bundled import SMOLLM2
from edgeweave.serving.tool_prompt import render_messages
from edgeweave.wire.protocol import Message

SPEC = OutputSpec(tools=tool_definitions(), tool_choice="required")
REQUEST = [Message(role="system", content="role: agent"), Message(role="user", content="lock the back door")]


def call(backend_kind: str, model: str, messages: list[Message]) -> tuple[str, dict[str, object]]:
    backend = load_backend(backend_kind, model)
    try:
        ids = render_messages(backend.tokenizer, messages, SPEC)
        text = backend.generate(ids, SamplingParams(max_tokens=120, output=SPEC)).text
    finally:
        backend.close()
    _, calls = parse_calls(text)
    assert len(calls) >= 1, text
    args = json.loads(calls[0].arguments)
    TOOLS[calls[0].name].args.model_validate(args)
    return calls[0].name, args


@pytest.mark.slow  # exports weave-agent-device to GGUF and .pte (the same exporters run in make test on weave-home)
def test_the_agent_model_calls_the_same_tool_on_every_runtime() -> None:
    answers = {kind: call(kind, "weave-agent-device", REQUEST) for kind in BACKEND_KINDS}
    assert len({json.dumps(a, sort_keys=True) for a in answers.values()}) == 1, answers


@pytest.mark.slow  # its prompt declares 21 tools' schemas (~3,000 tokens to prefill); the BPE grammar runs in make test
@pytest.mark.parametrize("kind", ["llamacpp"])
def test_smollm2_answers_a_valid_call(kind: str) -> None:
    ask = [Message(role="user", content="Please lock the back door.")]
    name, _ = call(kind, SMOLLM2, ask)
    assert name in TOOLS
