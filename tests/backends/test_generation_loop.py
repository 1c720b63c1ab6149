"""The shared generation loop: stop conditions, limits, streaming text, bad ids."""

from __future__ import annotations

import pytest
import torch

from device.backends.torch_backend import TorchBackend
from edgeweave.errors import UsageError
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.config import PRESETS
from edgeweave.models.llama import Transformer
from edgeweave.models.registry import resolve_checkpoint

PROMPT = "dim the kitchen lights to 30%"


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return TorchBackend.load(resolve_checkpoint("weave-home-device"))


def test_stops_at_end_of_turn_and_streams_the_same_text(backend: TorchBackend) -> None:
    prompt = chat_prompt(backend, PROMPT)
    result = backend.generate(prompt, SamplingParams(max_tokens=200))
    assert result.finish_reason == "stop"
    assert result.token_ids[-1] in backend.tokenizer.stop_ids
    streamed = "".join(ev.text for ev in backend.stream(prompt, SamplingParams(max_tokens=200)))
    assert streamed == result.text
    assert result.text.startswith('[{"call":"lights.dim"')


def test_max_tokens_and_stop_strings(backend: TorchBackend) -> None:
    prompt = chat_prompt(backend, PROMPT)
    short = backend.generate(prompt, SamplingParams(max_tokens=5))
    assert len(short.token_ids) == 5 and short.finish_reason == "length"
    cut = backend.generate(prompt, SamplingParams(max_tokens=200, stop=['"room"']))
    assert cut.finish_reason == "stop" and cut.text == '[{"call":"lights.dim",'


def test_context_overflow_and_bad_ids_are_usage_errors(backend: TorchBackend) -> None:
    with pytest.raises(UsageError, match="prompt"):
        list(backend.stream([1] * backend.context_length))
    with pytest.raises(UsageError, match="resume_tokens: token id 999"):
        list(backend.stream([1, 2], resume_tokens=[999]))
    with pytest.raises(UsageError, match="prompt"):
        list(backend.stream([]))


def test_generation_stops_at_the_context_end() -> None:
    torch.manual_seed(0)
    cfg = PRESETS["weave-home-device"].config.with_(max_seq_len=16, n_layers=1)
    backend = TorchBackend(Transformer(cfg))
    result = backend.generate([1, 5, 9, 10], SamplingParams(max_tokens=100, ignore_eos=True))
    assert len(result.token_ids) == 16 - 4 and result.finish_reason == "length"
