"""One served model on a device: its backend, its bounded queue, its thread.

Admission control: a backend runs one generation at a time (its KV cache
holds one sequence) on its own thread; up to ``max_queue`` more wait in FIFO
order.  A request beyond that is refused at once (the daemon answers 429 with
Retry-After estimated from the measured service time) instead of queueing
without bound on a device that cannot catch up.

Tokens cross from the backend thread to the event loop through an asyncio
queue; a cancel flag (client gone, or ``POST /v1/cancel/{id}``) is checked
between tokens, and a request cancelled while still queued never runs.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from edgeweave.config import ModelSpec, PowerModel
from edgeweave.generation.backend import Backend, TokenEvent
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.sampling import SamplingParams
from edgeweave.wire.protocol import BackendLoad, ModelInfo

EWMA = 0.3  # weight of the newest measurement in the moving averages
WARMUP = SamplingParams(max_tokens=16, ignore_eos=True)


class QueueFull(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"queue full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class Ticket:
    """A place in the queue, held from admission until the request ends."""

    cancel: threading.Event = field(default_factory=threading.Event)
    released: bool = False


_END = object()


class ModelWorker:
    def __init__(self, spec: ModelSpec, backend: Backend, power: PowerModel, cores: int) -> None:
        self.spec = spec
        self.backend = backend
        self.name = spec.name
        self.max_queue = spec.max_queue
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"backend-{spec.name}")
        self._busy_share = min(1.0, (spec.threads or cores) / cores)  # of the CPU a generation keeps busy
        self._marginal_w = (power.max_w - power.idle_w) * self._busy_share
        self.in_system = 0  # admitted and not yet finished (running + queued)
        self.running = 0
        self.completed = 0
        self.rejected = 0
        self.decode_tok_s = 0.0
        self.prefill_tok_s = 0.0
        self.service_s = 0.0  # moving average of one request's time on the backend

    # --- admission -------------------------------------------------------------------
    def admit(self) -> Ticket:
        """Take a place or raise :class:`QueueFull`.  Synchronous: no await between
        the check and the increment, so a burst cannot overshoot the bound."""
        if self.in_system >= 1 + self.max_queue:
            self.rejected += 1
            raise QueueFull(max(1, math.ceil(self.in_system * self.service_s)))
        self.in_system += 1
        return Ticket()

    def release(self, ticket: Ticket) -> None:
        if not ticket.released:
            ticket.released = True
            self.in_system -= 1

    # --- generation ------------------------------------------------------------------
    async def stream(
        self, ticket: Ticket, prompt: Sequence[int], params: SamplingParams, resume: Sequence[int]
    ) -> AsyncIterator[TokenEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def put(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def run() -> None:
            if ticket.cancel.is_set():
                put(_END)
                return
            self.running += 1
            try:
                for event in self.backend.stream(prompt, params, resume):
                    put(event)
                    if ticket.cancel.is_set():
                        break
                else:
                    self.completed += 1
                    self._update_rates()
                put(_END)
            except BaseException as e:  # handed to the event loop, raised there
                put(e)
            finally:
                self.running -= 1

        job = loop.run_in_executor(self._executor, run)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, TokenEvent)
                yield item
        finally:
            ticket.cancel.set()  # a consumer that stops early stops the backend too
            await asyncio.shield(job)
            self.release(ticket)

    def warm_up(self) -> None:
        """One short generation: first-call allocations happen here, and it gives
        the first measured speeds (what the coordinator sees before any request)."""
        self.backend.generate(chat_prompt(self.backend, "hello"), WARMUP)
        self._update_rates()

    def _update_rates(self) -> None:
        s = self.backend.last_stats
        for attr, value in (
            ("decode_tok_s", s.decode_tok_s),
            ("prefill_tok_s", s.prefill_tok_s),
            ("service_s", s.prefill_s + s.decode_s),
        ):
            if value > 0:
                old = getattr(self, attr)
                setattr(self, attr, value if old == 0 else (1 - EWMA) * old + EWMA * value)

    # --- energy ----------------------------------------------------------------------
    @property
    def joules_per_token(self) -> float:
        return self._marginal_w / self.decode_tok_s if self.decode_tok_s else 0.0

    def energy_j(self, busy_s: float) -> float:
        """Marginal energy of keeping this backend busy for ``busy_s`` seconds."""
        return self._marginal_w * busy_s

    # --- reports ---------------------------------------------------------------------
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            backend=self.backend.name,
            context_length=self.backend.context_length,
            vocab_size=self.backend.tokenizer.vocab_size,
            threads=self.spec.threads,
            max_queue=self.max_queue,
        )

    def load(self) -> BackendLoad:
        return BackendLoad(
            model=self.name,
            backend=self.backend.name,
            running=self.running,
            queued=self.in_system - self.running,
            max_queue=self.max_queue,
            completed=self.completed,
            rejected=self.rejected,
            decode_tok_s=round(self.decode_tok_s, 1),
            prefill_tok_s=round(self.prefill_tok_s, 1),
            joules_per_token=self.joules_per_token,
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.backend.close()
