"""p(True): the model judges its own answer (Kadavath et al., "Language Models (Mostly) Know What They
Know", arXiv 2207.05221), a baseline in the Inv-Entropy paper (arXiv 2506.09684).

The pure half that every tier's :class:`~edgeweave.uncertainty.samples.Sampler` shares (the device
daemon over its worker, the cloud service over its engine): the fixed verification prompt
(:func:`verification_messages`, rendered by the tier through the model's chat template), the one
greedy step it is answered with (:data:`P_TRUE_SAMPLING`: one token, the 20 most likely
alternatives), and the arithmetic on that step's top list (:func:`p_true_of`).

Choices where the paper is silent:

- Kadavath et al. ask "(A) True / (B) False" after a few-shot prompt on a base model; a small
  instruct model answers a chat turn, so the prompt asks for one word, True or False, and the first
  generated token is read.
- p(True) = P(True) / (P(True) + P(False)), each summed over the step's tokens that, stripped of
  surrounding whitespace and lower-cased, are a non-empty prefix of "true" or of "false" (so
  " True", "True", "true" and a byte-level model's "T" all count for True: BPE vocabularies have the
  word with and without a leading space, byte-level ones only its first letter).
- Fallback: when neither word is among the step's 20 most likely tokens, the model expressed no
  judgement and p(True) is 0.5 (the score ``1 - p`` is then the uninformative middle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edgeweave.generation.logprobs import MAX_TOP_LOGPROBS, TokenLogprob, TopLogprob
from edgeweave.generation.sampling import SamplingParams
from edgeweave.uncertainty.samples import last_user
from edgeweave.wire.protocol import Message

P_TRUE_SAMPLING = SamplingParams(max_tokens=1, temperature=0.0, logprobs=MAX_TOP_LOGPROBS)
NO_JUDGEMENT = 0.5  # neither True nor False among the top tokens

VERIFICATION_PROMPT = (
    "Question: {question}\n"
    "Proposed answer: {answer}\n"
    "Is the proposed answer correct? Reply with one word: True or False."
)


def verification_messages(messages: Sequence[Message], answer: str) -> list[Message]:
    """The conversation with its last user turn replaced by the verification question about ``answer``
    (earlier turns, a system prompt among them, stay as context; turns after it are dropped)."""
    last = last_user(messages)
    question = messages[last].content.strip()
    prompt = VERIFICATION_PROMPT.format(question=question, answer=answer.strip())
    return [*messages[:last], Message(role="user", content=prompt)]


def p_true_of(step: TokenLogprob) -> float:
    """p(True) from the verification step: the chosen token and its top alternatives, each token once."""
    tokens: dict[int, TopLogprob] = {t.id: t for t in (step, *step.top_logprobs)}

    def mass(word: str) -> float:
        spelled = (t for t in tokens.values() if (w := t.token.strip().lower()) and word.startswith(w))
        return sum(math.exp(t.logprob) for t in spelled)

    p_yes, p_no = mass("true"), mass("false")
    if p_yes + p_no == 0.0:
        return NO_JUDGEMENT
    return p_yes / (p_yes + p_no)
