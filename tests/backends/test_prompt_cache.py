"""The prompt cache: slot choice, and reuse on a real backend (greedy output and logits unchanged)."""

from __future__ import annotations

import numpy as np
import pytest

from device.backends.torch_backend import TorchBackend
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.prompt_cache import PromptCache
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.registry import resolve_checkpoint

PARAMS = SamplingParams(max_tokens=12, ignore_eos=True, logprobs=2)


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return TorchBackend.load(resolve_checkpoint("weave-home-device"))


def test_a_context_takes_the_free_slot_with_the_longest_prefix_else_the_least_recently_used() -> None:
    cache = PromptCache(3)
    for slot, ids in enumerate(([1, 2, 3, 4], [1, 2, 9], [7, 7])):
        assert cache.place(ids, [slot]).slot == slot
        cache.wrote(slot, ids, 0, np.zeros(4))
    got = cache.place([1, 2, 3, 5, 6], [0, 1, 2])
    assert (got.slot, got.reused, got.logits) == (0, 3, None)
    assert cache.place([1, 2, 3, 5, 6], [1, 2]).reused == 2  # slot 0 busy: the next best prefix
    assert cache.place([5], [2, 1]).slot == 2  # no prefix anywhere: slot 2 was used longest ago
    exact = cache.place([7, 7], [2])
    assert exact.reused == 2 and exact.logits is not None  # a cached prompt: nothing to evaluate
    cache.wrote(2, [8], 1)  # a decode step overwrote position 1: the kept prefill logits are stale
    assert cache.place([7, 7], [2]).logits is None and cache.tokens(2) == [7, 8]


def test_a_repeated_prompt_evaluates_nothing_and_gives_the_same_tokens_and_logprobs(backend: TorchBackend) -> None:
    prompt = chat_prompt(backend, "dim the kitchen lights to 30%")
    backend.logits([1, 2])  # slot 0 holds something else: the first run prefills everything
    first = list(backend.stream(prompt, PARAMS))
    assert backend.last_stats.cached_tokens == 0
    again = list(backend.stream(prompt, PARAMS))
    assert backend.last_stats.cached_tokens == len(prompt) and backend.last_stats.prefill_s == 0
    # the same kernels on the same inputs: bit-identical floats, not just close
    assert [(e.token_id, e.logprob) for e in again] == [(e.token_id, e.logprob) for e in first]


def test_resume_after_a_prefill_evaluates_only_the_new_tokens(backend: TorchBackend) -> None:
    prompt = chat_prompt(backend, "turn off the bedroom lights")
    backend.logits([3])
    want = list(backend.stream(prompt, PARAMS))
    backend.logits([3])
    warmed = backend.prefill(prompt)
    assert warmed.cached_tokens == 0 and warmed.generated_tokens == 0 and warmed.prefill_s > 0
    k = 5
    resume = [e.token_id for e in want[:k]]
    got = list(backend.stream(prompt, PARAMS.model_copy(update={"max_tokens": PARAMS.max_tokens - k}), resume))
    stats = backend.last_stats
    assert stats.cached_tokens == len(prompt) and stats.prompt_tokens == len(prompt) + k
    assert [e.token_id for e in got] == [e.token_id for e in want[k:]]
    # the resumed tokens went through one 5-row prefill instead of 5 one-row decode steps: float32
    # sums in another order, a few ulps of logits of magnitude ~10 (1e-4 leaves two orders to spare)
    for a, b in zip(got, want[k:], strict=True):
        assert a.logprob is not None and b.logprob is not None
        assert abs(a.logprob.logprob - b.logprob.logprob) < 1e-4
