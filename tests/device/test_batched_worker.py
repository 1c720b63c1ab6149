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
        async for ev in worker.stream(tickets[i], prompts[i], params, []):
            got.append(ev.token_id)
            if i == 0 and len(got) == 5:
                tickets[0].cancel.set()  # as POST /v1/cancel does
        return got

    got = await asyncio.gather(*(one(i) for i in range(len(prompts))))
    assert got[0] == want[0][: len(got[0])] and len(got[0]) < len(want[0])
    assert got[1] == want[1] and got[2] == want[2]
    assert worker.in_system == 0 and worker.running == 0
    assert tickets[2].stats.generated_tokens == 20 and tickets[2].stats.busy_s > 0
