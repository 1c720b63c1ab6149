"""Shared fixtures: the committed weave-home checkpoints and their exports, and the cloud service.

Exports are made once per test session into a temporary cache, so every run
exercises the exporters for real.  One ``edgeweave cloud serve`` process serves
every test file that needs a cloud endpoint (its own tests, DiSCo's and
Circinus's live tests): each start costs seconds, and those tests only assert
on their own requests or on counters relative to what they read first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Triton kernels run in Triton's interpreter on machines without a GPU; this must
# be set before any kernel module is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Ray's driver keeps a metrics-export thread running in this process after ray.shutdown() (there is no
# metrics agent to reach: it logs a failure every 10 s); a fresh-clone run aborted minutes after the Ray
# tests with nothing on stderr, so the tests turn metrics collection off before Ray is imported.
os.environ.setdefault("RAY_enable_metrics_collection", "0")

from edgeweave.cluster.processes import ServiceProcess
from edgeweave.models.registry import resolve_checkpoint

DEVICE_MODEL = "weave-home-device"
CLOUD_MODEL = "weave-home-cloud"
CLOUD_KEY = "cloud-test-key-0123456789"


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


@pytest.fixture(scope="session")
def cloud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The cloud service on weave-home-cloud with 1 MB of KV cache (8 blocks of 16 tokens: preemption),
    64 batched tokens per iteration and a request log (``requests.csv`` beside its log)."""
    from edgeweave.cluster.cluster_files import cloud_toml, write
    from edgeweave.cluster.processes import spawn

    tmp = tmp_path_factory.mktemp("cloud")
    log = f"request_log = {json.dumps(str(tmp / 'requests.csv'))}\n"
    path = write(tmp / "cloud.toml", cloud_toml(CLOUD_MODEL, CLOUD_KEY, 1.0, "max_batched_tokens = 64\n", log))
    svc = spawn("cloud", ["cloud", "serve", "--config", str(path)], tmp / "cloud.log")
    svc.wait_ready(120)
    yield svc
    assert svc.stop() == 0
