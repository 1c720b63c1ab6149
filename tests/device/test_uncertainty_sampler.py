"""The device's uncertainty sampler on a real torch worker: seeded samples, each token's logprob the
model's own (teacher-forced on the backend alone), their costs, p(True) read from the verification
prompt's top tokens, and the places it takes given back.

The samples are not compared token for token with unbatched generations: the three answers run as one
batch, whose float32 logits differ from a single row's by rounding (~1e-5), and at T = 1.5 a draw near a
boundary between two tokens may then fall the other way on some CPUs.  The logprob bound (1e-4) is ten
times that rounding."""

from __future__ import annotations

import numpy as np

from device.uncertainty import WorkerSampler
from device.worker import ModelWorker
from edgeweave.uncertainty.p_true import P_TRUE_SAMPLING, p_true_of, verification_messages
from edgeweave.wire.protocol import Message

QUESTION = [Message(role="user", content="turn off the bedroom lights")]


async def test_samples_are_seeded_generations_with_logprobs_and_p_true_reads_the_verdict(worker: ModelWorker) -> None:
    sampler = WorkerSampler(worker)
    batch = await sampler.sample(QUESTION, n=3, temperature=1.5, max_tokens=4, seed=3)
    prompt = worker.chat_ids(QUESTION)
    again = await sampler.sample(QUESTION, n=3, temperature=1.5, max_tokens=4, seed=3)
    assert [a.text for a in again.answers] == [a.text for a in batch.answers]  # seeded
    for answer in batch.answers:
        ids = worker.backend.tokenizer.encode(answer.text)  # the byte tokenizer round-trips text exactly
        assert len(answer.token_logprobs) == len(ids) + (answer.finish_reason == "stop")  # + the stop token
        logits = worker.backend.logits([*prompt, *ids]).astype(np.float64)[len(prompt) - 1 : -1]
        logits -= logits.max(-1, keepdims=True)
        forced = logits[np.arange(len(ids)), ids] - np.log(np.exp(logits).sum(-1))
        np.testing.assert_allclose(answer.token_logprobs[: len(ids)], forced, atol=1e-4)
    assert batch.prompt_tokens == len(prompt)
    assert batch.completion_tokens == sum(len(a.token_logprobs) for a in batch.answers) <= 12
    assert worker.in_system == 0
    answer = batch.answers[0].text
    p = await sampler.p_true(QUESTION, answer)
    verify = worker.chat_ids(verification_messages(QUESTION, answer))
    (step,) = worker.backend.stream(verify, P_TRUE_SAMPLING)
    assert step.logprob is not None and p == p_true_of(step.logprob) and 0.0 <= p <= 1.0
    assert worker.in_system == 0
