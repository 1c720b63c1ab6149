"""The engine on its own thread, streamed to asyncio callers.

One thread owns the :class:`~cloud.engine.engine.LLMEngine` and loops over
iterations while there is work (torch releases the GIL inside its kernels, so
the event loop keeps serving).  Callers add requests and aborts through a
queue; each request's tokens come back on its own asyncio queue.  Leaving
:meth:`AsyncEngine.generate` early (a client that disconnects) aborts the
request, which frees its KV blocks at the next iteration.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from cloud.engine.engine import LLMEngine, TokenOutput
from cloud.engine.stats import EngineStats
from edgeweave.errors import UsageError
from edgeweave.generation.sampling import SamplingParams
from edgeweave.wire.slo import AnySlo

log = logging.getLogger("edgeweave.engine")


class EngineFailed(Exception):
    """The engine hit an internal error while running this request."""


@dataclass(frozen=True)
class _Add:
    request_id: str
    prompt: Sequence[int]
    params: SamplingParams
    resume: Sequence[int]
    slo: AnySlo | None
    lora_adapter: str | None
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[TokenOutput | BaseException]


@dataclass(frozen=True)
class _Abort:
    request_id: str


class AsyncEngine:
    def __init__(self, engine: LLMEngine) -> None:
        self.engine = engine
        self._inbox: queue.SimpleQueue[_Add | _Abort] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._streams: dict[str, _Add] = {}
        self._running = False
        self._thread = threading.Thread(target=self._run, name="edgeweave-engine", daemon=True)
        self.snapshot: EngineStats = engine.stats()

    def start(self) -> None:
        self._running = True
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        self._wake.set()
        self._thread.join(timeout=30)

    # --- engine thread -------------------------------------------------------------
    def _run(self) -> None:
        while self._running:
            self._drain()
            if not self.engine.has_work():
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            try:
                outputs = self.engine.step()
            except Exception as e:  # an engine bug must not hang every client
                log.exception("engine iteration failed; failing its requests")
                for rid in list(self._streams):
                    self._deliver(rid, EngineFailed(f"engine error: {type(e).__name__}: {e}"))
                    self.engine.abort(rid)
                continue
            for out in outputs:
                self._deliver(out.request_id, out)
            self.snapshot = self.engine.stats()

    def _drain(self) -> None:
        while True:
            try:
                cmd = self._inbox.get_nowait()
            except queue.Empty:
                self.snapshot = self.engine.stats()
                return
            if isinstance(cmd, _Abort):
                self.engine.abort(cmd.request_id)
                self._streams.pop(cmd.request_id, None)
                continue
            try:
                self.engine.add_request(
                    cmd.request_id, cmd.prompt, cmd.params, cmd.resume, slo=cmd.slo, lora_adapter=cmd.lora_adapter
                )
            except UsageError as e:
                cmd.loop.call_soon_threadsafe(cmd.out.put_nowait, e)
                continue
            self._streams[cmd.request_id] = cmd

    def _deliver(self, request_id: str, item: TokenOutput | BaseException) -> None:
        stream = self._streams.get(request_id)
        if stream is None:
            return
        if isinstance(item, BaseException) or item.finish_reason:
            del self._streams[request_id]
        stream.loop.call_soon_threadsafe(stream.out.put_nowait, item)

    # --- asyncio side --------------------------------------------------------------
    async def generate(
        self,
        request_id: str,
        prompt: Sequence[int],
        params: SamplingParams,
        resume: Sequence[int] = (),
        slo: AnySlo | None = None,
        lora_adapter: str | None = None,
    ) -> AsyncIterator[TokenOutput]:
        """Stream ``request_id``'s tokens; bad input raises :class:`UsageError` before the first."""
        self.engine.check(prompt, resume, params, lora_adapter)
        out: asyncio.Queue[TokenOutput | BaseException] = asyncio.Queue()
        add = _Add(request_id, prompt, params, resume, slo, lora_adapter, asyncio.get_running_loop(), out)
        self._inbox.put(add)
        self._wake.set()
        done = False
        try:
            while True:
                item = await out.get()
                if isinstance(item, BaseException):
                    done = True
                    raise item
                yield item
                if item.finish_reason:
                    done = True
                    return
        finally:
            if not done:
                self._inbox.put(_Abort(request_id))
                self._wake.set()
