"""Starting edgeweave servers as child processes (the demo, tests, benchmarks).

A child is ready when it prints its readiness line (:mod:`edgeweave.serving.service`);
its log (stderr) goes to a file so a chatty child can never block on a full
pipe.  Children run in their own session, so the parent decides the shutdown
order, and on Linux they get SIGTERM if the parent dies, so nothing is left
running behind a crashed parent.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeweave.serving.service import READY_PREFIX


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for services that must know theirs in advance)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class ServiceFailed(RuntimeError):
    pass


@dataclass
class ServiceProcess:
    name: str
    proc: subprocess.Popen[str]
    log_path: Path
    ready_line: str = ""

    @property
    def url(self) -> str:
        return next(w for w in self.ready_line.split() if w.startswith("http://"))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.2):
                    line = self.proc.stdout.readline()
                    if line.startswith(READY_PREFIX):
                        self.ready_line = line.strip()
                        return self.ready_line
                    if not line and self.proc.poll() is not None:
                        break
                elif self.proc.poll() is not None:
                    break
        self.kill()
        tail = "\n".join(self.log_text().splitlines()[-15:])
        raise ServiceFailed(f"{self.name} did not become ready within {timeout_s:.0f} s; its log ends:\n{tail}")

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def spawn(
    name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None, prefix: Sequence[str] = ()
) -> ServiceProcess:
    """Start ``edgeweave ARGS`` (this interpreter) without waiting for readiness; ``prefix`` runs it
    through another command that execs it in place (``ip netns exec NS``)."""
    log = log_path.open("w")
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "edgeweave.cli", *args],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    log.close()
    return ServiceProcess(name, proc, log_path)
