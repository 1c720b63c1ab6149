"""Batched decoding on llama.cpp (several sequences in one context): each answer of a batch is the
answer it would be alone, whoever joins or leaves the batch meanwhile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgeweave.generation.answer import Answer, TokenEvent
from edgeweave.generation.backend import Backend, BatchRow
from edgeweave.generation.backends import load_backend
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.sampling import SamplingParams
from tests.conftest import DEVICE_MODEL

COMMANDS = ("turn off the bedroom lights", "dim the kitchen lights to 30%", "lock the front door")
# float32 logits of magnitude ~10 from the same weights, summed in another order when rows share a
# matmul and an attention over a unified cache (masked cells add exact zeros): a few ulps, measured
# below 1e-6 here; 1e-4 leaves two orders of magnitude on any x86 SIMD width
LOGPROB_TOL = 1e-4


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Backend, Backend]]:
    alone = load_backend("llamacpp", DEVICE_MODEL, threads=1)
    batched = load_backend("llamacpp", DEVICE_MODEL, threads=1, slots=3)
    yield alone, batched
    alone.close()
    batched.close()


def run(backend: Backend, answers: list[Answer], joins: dict[int, list[Answer]]) -> dict[int, list[TokenEvent]]:
    """Drive the batch loop; ``joins[k]``: answers submitted before step k."""
    loop, got, steps = backend.batch, {id(a): [] for a in answers}, 0
    while not loop.idle or any(k >= steps for k in joins):
        for a in joins.get(steps, []):
            loop.submit(a)
        for a, ev in loop.step().events:
            got[id(a)].append(ev)
        steps += 1
    return got


def test_a_batch_gives_each_answer_its_lone_tokens_and_logprobs(pair: tuple[Backend, Backend]) -> None:
    alone, batched = pair
    prompts = [chat_prompt(alone, c) for c in COMMANDS]
    params = [SamplingParams(max_tokens=n, ignore_eos=True, logprobs=1) for n in (24, 9, 16)]
    params.append(SamplingParams(max_tokens=12, temperature=0.8, seed=7, logprobs=1))  # seeded sampling too
    prompts.append(prompts[0])
    want = [list(alone.stream(p, s)) for p, s in zip(prompts, params, strict=True)]
    sizes: list[int] = []
    forward_rows = batched.forward_rows

    def recording(rows: list[BatchRow]) -> list:
        sizes.append(len(rows))
        return forward_rows(rows)

    batched.forward_rows = recording  # type: ignore[method-assign]
    answers = [batched.answer(p, s) for p, s in zip(prompts, params, strict=True)]
    # three start together, the fourth joins mid-way and waits for the first free slot
    got = run(batched, answers, {0: answers[:3], 4: answers[3:]})
    del batched.forward_rows
    assert max(sizes) == 3  # really batched: three rows in one evaluation
    for answer, lone in zip(answers, want, strict=True):
        events = got[id(answer)]
        assert [e.token_id for e in events] == [e.token_id for e in lone]
        assert [e.text for e in events] == [e.text for e in lone]
        assert events[-1].finish_reason == lone[-1].finish_reason
        for a, b in zip(events, lone, strict=True):
            assert a.logprob is not None and b.logprob is not None
            assert abs(a.logprob.logprob - b.logprob.logprob) < LOGPROB_TOL


def test_cancelling_one_answer_leaves_the_others_unchanged(pair: tuple[Backend, Backend]) -> None:
    alone, batched = pair
    prompts = [chat_prompt(alone, c) for c in COMMANDS]
    params = SamplingParams(max_tokens=14, ignore_eos=True)
    want = [[e.token_id for e in alone.stream(p, params)] for p in prompts]
    answers = [batched.answer(p, params) for p in prompts]
    loop, got = batched.batch, {id(a): [] for a in answers}
    for a in answers:
        loop.submit(a)
    while not loop.idle:
        step = loop.step()
        for a, ev in step.events:
            got[id(a)].append(ev.token_id)
            if a is answers[1] and len(got[id(a)]) == 4:
                a.cancel.set()
    assert got[id(answers[1])] == want[1][:4]
    assert got[id(answers[0])] == want[0] and got[id(answers[2])] == want[2]


def test_resume_in_a_batch_reuses_each_slots_prompt_cache(pair: tuple[Backend, Backend]) -> None:
    alone, batched = pair
    prompts = [chat_prompt(alone, c) for c in COMMANDS[:2]]
    params = SamplingParams(max_tokens=10, ignore_eos=True)
    want = [[e.token_id for e in alone.stream(p, params)] for p in prompts]
    first = [batched.answer(p, params) for p in prompts]
    run(batched, first, {0: first})
    resumed = [
        batched.answer(p, params.model_copy(update={"max_tokens": 6}), w[:4])
        for p, w in zip(prompts, want, strict=True)
    ]
    got = run(batched, resumed, {0: resumed})
    for answer, p, w in zip(resumed, prompts, want, strict=True):
        assert [e.token_id for e in got[id(answer)]] == w[4:]
        # each found its own earlier answer's slot: prompt + 4 tokens cached, the last re-evaluated
        assert answer.stats.cached_tokens == len(p) + 3
