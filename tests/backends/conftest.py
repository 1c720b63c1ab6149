"""One loaded backend per runtime for each weave-home model, plus its ONNX export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeweave.export.cache import runtime_file
from edgeweave.generation.backend import Backend
from edgeweave.generation.backends import BACKEND_KINDS, load_backend
from tests.conftest import CLOUD_MODEL, DEVICE_MODEL

MODELS = [DEVICE_MODEL, CLOUD_MODEL]


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
