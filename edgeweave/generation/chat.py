"""Single-turn chat helpers over any backend (used by eval, the demo and tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.tokenizer import ChatMessage

if TYPE_CHECKING:
    from edgeweave.generation.backend import Backend, GenerationResult

GREEDY_REPLY = SamplingParams(max_tokens=200)


def chat_prompt(backend: Backend, user_text: str) -> list[int]:
    return backend.tokenizer.render_chat([ChatMessage("user", user_text)])


def reply(backend: Backend, user_text: str, params: SamplingParams = GREEDY_REPLY) -> GenerationResult:
    return backend.generate(chat_prompt(backend, user_text), params)


def reply_text(backend: Backend, user_text: str) -> str:
    return reply(backend, user_text).text
