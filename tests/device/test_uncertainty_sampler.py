"""The device's uncertainty sampler on a real torch worker: seeded samples equal the backend's own
generations with their chosen-token logprobs and costs, p(True) read from the verification prompt's
top tokens, and the places it takes given back."""

from __future__ import annotations

from device.uncertainty import WorkerSampler
from device.worker import ModelWorker
from edgeweave.generation.sampling import SamplingParams
from edgeweave.uncertainty.p_true import P_TRUE_SAMPLING, p_true_of, verification_messages
from edgeweave.wire.protocol import Message

QUESTION = [Message(role="user", content="turn off the bedroom lights")]


async def test_samples_are_seeded_generations_with_logprobs_and_p_true_reads_the_verdict(worker: ModelWorker) -> None:
    sampler = WorkerSampler(worker)
    batch = await sampler.sample(QUESTION, n=3, temperature=1.5, max_tokens=4, seed=3)
    prompt = worker.chat_ids(QUESTION)
    for i, answer in enumerate(batch.answers):
        params = SamplingParams(max_tokens=4, temperature=1.5, seed=3 + i, logprobs=0)
        alone = list(worker.backend.stream(prompt, params))
        assert answer.text == "".join(ev.text for ev in alone)
        assert answer.token_logprobs == tuple(ev.logprob.logprob for ev in alone if ev.logprob is not None)
        assert answer.finish_reason == alone[-1].finish_reason
    assert batch.prompt_tokens == len(prompt)
    assert batch.completion_tokens == sum(len(a.token_logprobs) for a in batch.answers) <= 12
    assert worker.in_system == 0
    answer = batch.answers[0].text
    p = await sampler.p_true(QUESTION, answer)
    verify = worker.chat_ids(verification_messages(QUESTION, answer))
    (step,) = worker.backend.stream(verify, P_TRUE_SAMPLING)
    assert step.logprob is not None and p == p_true_of(step.logprob) and 0.0 <= p <= 1.0
    assert worker.in_system == 0
