"""The worker's continuous batching on llama.cpp slots: concurrent answers through the backend
thread equal each answer alone, a cancelled one leaves the others whole, and admission counts
``slots`` running plus ``max_queue`` waiting."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from device.worker import ModelWorker, QueueFull
from edgeweave.config import DEFAULT_POWER, ModelSpec
from edgeweave.generation.backends import load_backend
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.sampling import SamplingParams
from tests.conftest import DEVICE_MODEL

SLOTS, MAX_QUEUE = 2, 1
COMMANDS = ("turn off the bedroom lights", "dim the kitchen lights to 30%", "lock the front door")


@pytest.fixture(scope="module")
def worker() -> Iterator[ModelWorker]:
    spec = ModelSpec(model=DEVICE_MODEL, backend="llamacpp", threads=1, slots=SLOTS, max_queue=MAX_QUEUE)
    backend = load_backend("llamacpp", DEVICE_MODEL, threads=1, slots=SLOTS)
    w = ModelWorker(spec, backend, DEFAULT_POWER["pi"], os.cpu_count() or 1)
    w.warm_up()
    yield w
    w.close()


async def test_concurrent_answers_equal_each_alone_and_a_cancel_disturbs_none(worker: ModelWorker) -> None:
    prompts = [chat_prompt(worker.backend, c) for c in COMMANDS]
    params = SamplingParams(max_tokens=20, ignore_eos=True)
    want = [worker.backend.generate(p, params).token_ids for p in prompts]
    tickets = [worker.admit() for _ in prompts]  # two run, one waits for a slot
    with pytest.raises(QueueFull):
        worker.admit()

    async def one(i: int) -> list[int]:
        got = []
        try:
            async for ev in worker.stream(tickets[i], prompts[i], params, []):
                got.append(ev.token_id)
                if i == 0 and len(got) == 5:
                    tickets[0].cancel.set()  # as POST /v1/cancel does
        finally:
            worker.release(tickets[i])  # as the daemon does when the request ends
        return got

    got = await asyncio.gather(*(one(i) for i in range(len(prompts))))
    assert got[0] == want[0][: len(got[0])] and len(got[0]) < len(want[0])
    assert got[1] == want[1] and got[2] == want[2]
    assert worker.in_system == 0 and worker.running == 0
    assert tickets[2].generations[0].generated_tokens == 20 and tickets[2].busy_s > 0


async def test_a_ticket_of_several_places_runs_its_choices_in_the_slots_and_reuses_the_prompt(
    worker: ModelWorker,
) -> None:
    prompt = worker.backend.tokenize("the", add_bos=True)  # an open prompt: seeds give different answers
    seeded = [SamplingParams(max_tokens=12, temperature=1.5, seed=7 + i, ignore_eos=True) for i in range(3)]
    want = [worker.backend.generate(prompt, p).token_ids for p in seeded]
    with pytest.raises(ValueError, match="holds 1 to 3"):
        worker.admit(SLOTS + MAX_QUEUE + 1)
    ticket = worker.admit(3)  # the whole capacity: two run, one waits
    with pytest.raises(QueueFull):
        worker.admit()

    async def one(p: SamplingParams) -> list[int]:
        return [ev.token_id async for ev in worker.stream(ticket, prompt, p, [])]

    try:
        got = await asyncio.gather(*(one(p) for p in seeded))
    finally:
        worker.release(ticket)
    assert got == want and len({tuple(g) for g in got}) == 3  # each choice its own seed, as alone
    assert worker.in_system == 0
    # the third waited for a slot that had just answered the same prompt: nothing of it is evaluated again
    assert ticket.generations[2].cached_tokens == len(prompt)
