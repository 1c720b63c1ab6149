"""Every runtime reports the same log-probabilities through the shared generation loop.

Tolerance: a logprob is a log-softmax of the step's logits, ``z_i - logsumexp(z)``; ``logsumexp`` moves by at
most ``max_j |dz_j|`` when the logits move by ``dz``, so an absolute logit error ``e`` gives at most ``2e`` in
every logprob, and at most ``2e`` in the k-th largest logprob (a sorted vector's k-th entry is 1-Lipschitz in the
max norm), whatever the ties.  The logit tolerances are test_parity.py's, which hold on any x86 CPU for the
reasons stated there (fp32 everywhere, only kernels and summation order differ); the logprobs themselves are
computed in float64 from those logits, adding nothing measurable.
"""

from __future__ import annotations

import numpy as np
import pytest

from device.backends.llamacpp_backend import LlamaCppBackend
from edgeweave.generation.backend import Backend, TokenEvent
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.logprobs import token_logprob
from edgeweave.generation.sampling import SamplingParams
from tests.backends.test_parity import PROMPTS, TOLERANCE

TOP = 5
PARAMS = SamplingParams(max_tokens=32, ignore_eos=True, logprobs=TOP)


def _events(backend: Backend, ids: list[int], params: SamplingParams = PARAMS) -> list[TokenEvent]:
    return list(backend.stream(ids, params))


@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_logprobs_agree_on_all_runtimes(backends: dict[str, Backend], prompt: str) -> None:
    ids = chat_prompt(backends["torch"], prompt)
    ref = _events(backends["torch"], ids)
    for name in ("llamacpp", "executorch"):
        got = _events(backends[name], ids)
        assert [ev.token_id for ev in got] == [ev.token_id for ev in ref], name  # greedy: the same tokens
        for r, g in zip(ref, got, strict=True):
            assert r.logprob is not None and g.logprob is not None
            bound = 2 * TOLERANCE[name]
            assert abs(g.logprob.logprob - r.logprob.logprob) <= bound, (name, r.index)
            assert len(g.logprob.top_logprobs) == len(r.logprob.top_logprobs) == TOP
            ref_top = np.array([t.logprob for t in r.logprob.top_logprobs])
            top_diff = np.abs(np.array([t.logprob for t in g.logprob.top_logprobs]) - ref_top)
            assert top_diff.max() <= bound, (name, r.index, top_diff)
            assert g.logprob.bytes == r.logprob.bytes and g.logprob.token == r.logprob.token


def test_logprobs_are_the_log_softmax_of_each_steps_logits(backends: dict[str, Backend]) -> None:
    """The loop reports the logits the token was chosen from: against one forward pass over the whole
    sequence, whose logits match the prefill-then-decode ones to summation order (test_parity's 1e-3 for the
    same fp32 graph with other kernels, so 2e-3 here)."""
    torch_backend = backends["torch"]
    ids = chat_prompt(torch_backend, PROMPTS[0])
    events = _events(torch_backend, ids)
    tokens = [ev.token_id for ev in events]
    full = torch_backend.logits(ids + tokens[:-1])
    for ev in events:
        assert ev.logprob is not None and ev.logprob.id == ev.token_id
        want = token_logprob(full[len(ids) - 1 + ev.index], ev.token_id, TOP, torch_backend.tokenizer.token_bytes)
        assert abs(ev.logprob.logprob - want.logprob) <= 2e-3
        assert ev.logprob.top_logprobs[0].id == ev.token_id  # greedy picks the most likely token
        top = [t.logprob for t in ev.logprob.top_logprobs]
        assert ev.logprob.logprob <= 0 and top == sorted(top, reverse=True)


def test_no_logprobs_unless_asked_and_top_zero(backends: dict[str, Backend]) -> None:
    ids = chat_prompt(backends["torch"], PROMPTS[3])
    for backend in backends.values():
        assert all(ev.logprob is None for ev in _events(backend, ids, SamplingParams(max_tokens=8)))
        zero = _events(backend, ids, SamplingParams(max_tokens=8, logprobs=0))
        assert all(ev.logprob is not None and ev.logprob.top_logprobs == [] for ev in zero)


def test_sampled_tokens_get_their_logprob(backends: dict[str, Backend]) -> None:
    """Raw logprobs whatever the sampler: a seeded, tempered request reports each chosen token's."""
    ids = chat_prompt(backends["torch"], PROMPTS[2])
    params = SamplingParams(max_tokens=16, temperature=1.5, seed=3, logprobs=2)
    plain = backends["torch"].generate(ids, params.model_copy(update={"logprobs": None})).token_ids
    events = _events(backends["torch"], ids, params)
    assert [ev.token_id for ev in events] == plain  # asking for logprobs does not change the answer
    assert all(ev.logprob is not None and ev.logprob.id == ev.token_id for ev in events)


def test_llamacpp_native_token_bytes_match_ours(backends: dict[str, Backend]) -> None:
    llama = backends["llamacpp"]
    assert isinstance(llama, LlamaCppBackend)
    vocab = llama.tokenizer.vocab_size
    assert [llama.native_tokenizer.token_bytes(i) for i in range(vocab)] == [
        llama.tokenizer.token_bytes(i) for i in range(vocab)
    ]
