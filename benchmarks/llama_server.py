"""llama.cpp's own OpenAI-compatible server (``llama-server``), the peer of the cloud engine's benchmark.

What a user would run instead of edgeweave's engine on a CPU machine: llama.cpp's HTTP server
with N parallel slots, which it decodes together in one batch (continuous batching: a request
takes a free slot at the next decode step).  llama-cpp-python's own server (``llama_cpp.server``)
is not that peer: it runs one request at a time.

The binary is built by ``make llama-server`` from the llama.cpp sources vendored in the sdist of
the llama-cpp-python the project pins (the same llama.cpp edgeweave's device backend runs),
into the virtual environment's ``bin/``.  ``$EDGEWEAVE_LLAMA_SERVER`` names another binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edgeweave.cluster.processes import _die_with_parent, free_port
from edgeweave.errors import EdgeweaveError

ENV = "EDGEWEAVE_LLAMA_SERVER"
MAKE_TARGET = "make llama-server"


class LlamaServerMissing(EdgeweaveError):
    """No llama-server binary where the benchmark looks (a setup step, not a bug)."""


def find_binary(env: dict[str, str] | None = None, prefix: str = sys.prefix) -> Path:
    """``$EDGEWEAVE_LLAMA_SERVER``, else the virtual environment's ``bin/llama-server``, else the PATH's."""
    env = os.environ if env is None else env
    named = env.get(ENV)
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LlamaServerMissing(f"{ENV}={named}: not an executable file (build one with `{MAKE_TARGET}`)")
        return path
    beside = Path(prefix) / "bin" / "llama-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    on_path = shutil.which("llama-server", path=env.get("PATH"))
    if on_path:
        return Path(on_path)
    raise LlamaServerMissing(
        f"llama-server: not found in {beside.parent} nor on PATH; build it with `{MAKE_TARGET}` "
        f"(llama.cpp's server from the pinned llama-cpp-python sdist, a few minutes) or set {ENV}"
    )


@dataclass(frozen=True)
class LlamaServerOptions:
    """How the peer serves: as many slots as the engine's batch, each with the model's whole context."""

    slots: int  # --parallel: sequences decoded together
    context_per_slot: int  # the model's context; --ctx-size is this times the slots
    threads: int  # --threads and --threads-batch, equal to the engine's compute threads
    batch_tokens: int  # --batch-size / --ubatch-size: tokens per decode call, the engine's max_batched_tokens

    def args(self, model: Path, port: int) -> list[str]:
        return [
            "--model", str(model),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--parallel", str(self.slots),
            "--ctx-size", str(self.slots * self.context_per_slot),
            "--threads", str(self.threads),
            "--threads-batch", str(self.threads),
            "--batch-size", str(self.batch_tokens),
            "--ubatch-size", str(self.batch_tokens),
            "--cont-batching",
            "--no-webui",
        ]  # fmt: skip


class LlamaServer:
    """``llama-server`` as a child process on a free loopback port; a context manager."""

    def __init__(self, binary: Path, model: Path, options: LlamaServerOptions, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [str(binary), *options.args(model, self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # not left running behind a crashed benchmark
            )

    def wait_ready(self, timeout_s: float) -> None:
        """Until ``/health`` answers 200 (it answers 503 while the model loads)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"llama-server did not become ready within {timeout_s:.0f} s; its log ends:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
