"""One loaded backend per runtime for each weave-home model, plus its ONNX export (the cloud model's: slow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeweave.export.cache import runtime_file
from edgeweave.generation.backend import Backend
from edgeweave.generation.backends import BACKEND_KINDS, load_backend
from tests.conftest import CLOUD_MODEL, DEVICE_MODEL

# The cloud model is the same architecture (GQA, the byte tokenizer) at twice the width and more layers, through
# the same exporters and runtimes: its variants (about 60 s of exports on 2 cores) run in `make test-all`, the
# device model's in `make test`.
MODELS = [DEVICE_MODEL, pytest.param(CLOUD_MODEL, marks=pytest.mark.slow)]


@pytest.fixture(scope="session")
def backends_by_model() -> Iterator[dict[str, dict[str, Backend]]]:
    cache: dict[str, dict[str, Backend]] = {}
    yield cache
    for per_model in cache.values():
        for backend in per_model.values():
            backend.close()


@pytest.fixture(params=MODELS, scope="session")
def model_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def backends(model_name: str, backends_by_model: dict[str, dict[str, Backend]]) -> dict[str, Backend]:
    if model_name not in backends_by_model:
        backends_by_model[model_name] = {kind: load_backend(kind, model_name) for kind in BACKEND_KINDS}
    return backends_by_model[model_name]


@pytest.fixture(scope="session")
def onnx_file(model_name: str) -> Path:
    from edgeweave.models.registry import resolve_checkpoint

    return runtime_file(resolve_checkpoint(model_name), "onnx")
