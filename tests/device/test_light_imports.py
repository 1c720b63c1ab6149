"""Light imports: what a command loads, read from Python's own import log (``PYTHONPROFILEIMPORTTIME``).

A device daemon serving only llama.cpp (a Pi) must not load torch, Triton, Ray
or ExecuTorch: each costs seconds and hundreds of MB there.  ``edgeweave --help``
and ``edgeweave config check`` must answer without torch, so they stay well
under a second.  Checking the modules rather than a wall-clock time holds on a
loaded machine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from coordinator.cluster.device_client import DeviceClient
from edgeweave.cluster.cluster_files import LocalDevice, coordinator_toml, device_toml, new_secret, write
from edgeweave.cluster.processes import spawn
from edgeweave.export.cache import runtime_file
from edgeweave.generation.sampling import SamplingParams
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.protocol import DeviceInfo, DoneEvent, GenerateRequest, Message
from tests.cli import run_cli

HEAVY = {"torch", "triton", "ray", "executorch"}
IMPORT_LOG = {"PYTHONPROFILEIMPORTTIME": "1"}


def imported(stderr: str) -> set[str]:
    """Top-level packages named in an import-time log (``import time: self | cumulative | name``)."""
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0] for line in stderr.splitlines() if line.startswith("import time:")
    }


def test_help_and_config_check_import_no_torch(tmp_path: Path) -> None:
    secret = new_secret()
    device = write(tmp_path / "pi.toml", device_toml(LocalDevice("pi-1", "pi", "llamacpp", threads=1), secret))
    coordinator = write(tmp_path / "coordinator.toml", coordinator_toml(secret, None))
    for args in (("--help",), ("config", "check", str(device)), ("config", "check", str(coordinator))):
        done = run_cli(*args, **IMPORT_LOG)
        assert done.returncode == 0, done.stderr[-3000:]
        modules = imported(done.stderr)
        assert "edgeweave" in modules  # the log was read
        assert not modules & HEAVY, (args, modules & HEAVY)


def test_a_llamacpp_daemon_imports_no_torch_triton_ray_or_executorch(device_checkpoint: Path, tmp_path: Path) -> None:
    gguf = runtime_file(device_checkpoint, "gguf")  # exported here: the exporter needs torch, the daemon must not
    profile = LocalDevice("pi-light", "pi", "llamacpp", threads=1, model=str(gguf))
    secret = new_secret()
    config = write(tmp_path / "pi.toml", device_toml(profile, secret, advertise=True))
    daemon = spawn("pi-light", ["device", "serve", "--config", str(config)], tmp_path / "pi.log", env=IMPORT_LOG)
    try:
        daemon.wait_ready(120)

        async def serve_one() -> DoneEvent:
            async with aiohttp.ClientSession() as session:
                client = DeviceClient(session, ClusterKey(secret.encode()), daemon.url)
                info = await client.get("/v1/info", DeviceInfo, 10)
                assert [m.backend for m in info.models] == ["llamacpp"]
                req = GenerateRequest(
                    messages=[Message(role="user", content="lock the back door")],
                    sampling=SamplingParams(max_tokens=8),
                )
                async with client.generate(req) as events:
                    got = [ev async for ev in events]
            assert isinstance(got[-1], DoneEvent)
            return got[-1]

        asyncio.run(serve_one())
    finally:
        assert daemon.stop() == 0
    modules = imported(daemon.log_text())
    assert {"device", "llama_cpp", "zeroconf"} <= modules  # the log covers the daemon's whole life
    assert not modules & HEAVY, sorted(modules & HEAVY)
