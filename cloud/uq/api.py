"""The cloud's uncertainty API, framework-free (mounted by :mod:`cloud.routes`).

- ``POST /v1/embeddings``: OpenAI's shape (:mod:`edgeweave.wire.embeddings`) with the configured
  sentence embedder, the one the measures use; ``encoding_format: base64`` is little-endian
  float32, as OpenAI's clients decode it; usage counts the embedder's word pieces.  Without an
  embedder (``embedder = none`` in ``[cloud]``) the route does not exist.
- ``uncertainty`` on a chat request (:func:`scorer_for`): choice 0 is scored on its own messages.
  A completions request has no messages to perturb: its ``uncertainty`` is refused (400).
"""

from __future__ import annotations

from cloud.uq.runtime import AnswerScorer, UqRuntime
from edgeweave.serving.embeddings import embeddings_response
from edgeweave.serving.http_errors import ApiError, parse_json
from edgeweave.wire.embeddings import EmbeddingRequest, EmbeddingResponse
from edgeweave.wire.openai_api import ChatCompletionRequest, CompletionRequest, chat_messages

EMBEDDINGS = "/v1/embeddings"


def owns(uq: UqRuntime, method: str, path: str) -> bool:
    return method == "POST" and path == EMBEDDINGS and uq.embedder is not None


async def embeddings(uq: UqRuntime, body: bytes) -> EmbeddingResponse:
    assert uq.embedder is not None
    return await embeddings_response(parse_json(body, EmbeddingRequest), uq.embedder)


def scorer_for(
    uq: UqRuntime, req: ChatCompletionRequest | CompletionRequest, lora_adapter: str | None
) -> AnswerScorer | None:
    """The scorer of ``req``'s choice 0 (None: no ``uncertainty`` asked); 400 naming ``uncertainty``
    where it cannot be scored."""
    if req.uncertainty is None:
        return None
    if not isinstance(req, ChatCompletionRequest):
        raise ApiError(
            400,
            "uncertainty: scores need chat messages (their last user turn is perturbed): use /v1/chat/completions",
            param="uncertainty",
        )
    return uq.scorer(chat_messages(req.messages), req.uncertainty, req.seed, lora_adapter)
