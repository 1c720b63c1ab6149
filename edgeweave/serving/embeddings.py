"""``/v1/embeddings`` for every front door that serves it (cloud service, coordinator), and the lazy embedder.

:class:`LazyEmbedder` loads a sentence embedder
(:func:`edgeweave.models.embedder.load_embedder`) off the event loop on first use, once however
many requests arrive meanwhile; :func:`embeddings_response` answers an OpenAI embeddings request with
it (``float`` lists or ``base64`` of little-endian float32, as OpenAI's clients decode; usage in
the embedder's word pieces).
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import numpy as np

from edgeweave.models.embedder import load_embedder
from edgeweave.serving.http_errors import ApiError
from edgeweave.uncertainty.samples import Embedder
from edgeweave.wire.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage


class LazyEmbedder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.model_id = Path(name).name  # what clients ask /v1/embeddings for
        self._embedder: Embedder | None = None
        self._loading = asyncio.Lock()

    async def get(self) -> Embedder:
        async with self._loading:
            if self._embedder is None:
                self._embedder = await asyncio.to_thread(load_embedder, self.name)
        return self._embedder


def _vector(row: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in row]


def _embed(embedder: Embedder, texts: list[str]) -> tuple[np.ndarray, int]:
    return embedder.embed(texts), embedder.tokens(texts)


async def embeddings_response(req: EmbeddingRequest, lazy: LazyEmbedder) -> EmbeddingResponse:
    if req.model != lazy.model_id:
        raise ApiError(404, f"model {req.model!r} is not served here (embeddings: {lazy.model_id})", param="model")
    embedder = await lazy.get()
    vectors, tokens = await asyncio.to_thread(_embed, embedder, req.texts)  # seconds of CPU for long lists
    data = [Embedding(index=i, embedding=_vector(row, req.encoding_format)) for i, row in enumerate(vectors)]
    return EmbeddingResponse(
        data=data, model=req.model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
    )
