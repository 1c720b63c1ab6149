"""Shared fixtures: the committed weave-home checkpoints and their exports.

Exports are made once per test session into a temporary cache, so every run
exercises the exporters for real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Triton kernels run in Triton's interpreter on machines without a GPU; this must
# be set before any kernel module is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from edgeweave.models.registry import resolve_checkpoint

DEVICE_MODEL = "weave-home-device"
CLOUD_MODEL = "weave-home-cloud"


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edgeweave-cache")
    os.environ["EDGEWEAVE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def device_checkpoint() -> Path:
    return resolve_checkpoint(DEVICE_MODEL)


@pytest.fixture(scope="session")
def cloud_checkpoint() -> Path:
    return resolve_checkpoint(CLOUD_MODEL)
