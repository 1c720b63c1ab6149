"""One served model on a device: its backend, its bounded queue, its generation thread.

The backend thread runs the continuous-batching loop (:mod:`edgeweave.generation.batching`):
each step one batched evaluation over up to ``backend.slots`` active answers (new prompts'
prefills and every decoding answer's next token), so a runtime with several KV-cache slots
serves several answers at once and one with a single slot serves them one after another.

Admission control: up to ``slots`` answers run and up to ``max_queue`` more wait, FIFO, for a
slot.  A request beyond that is refused at once (the daemon answers 429 with Retry-After
estimated from the measured service time) instead of queueing without bound on a device that
cannot catch up.  A prefill (``POST /v1/prefill``) takes a place like a generation: it uses the
runtime.  A request with ``n`` choices (or an uncertainty score's extra samples) takes one
:class:`Ticket` of several places: its generations run under it, at most that many at once, so
what the device holds never exceeds ``slots + max_queue`` generations.

Tokens cross from the backend thread to the event loop once per step (one wake-up of the loop
for every token of that step); a cancel flag (client gone, or ``POST /v1/cancel/{id}``) is
checked before every step, so a cancelled answer leaves the batch at the next step without
disturbing the others, and one cancelled while still queued never runs.  Each generation has its
own flag (a consumer that stops reading one choice stops only that one); the ticket's flag
cancels every generation of the request.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from edgeweave.config import ModelSpec, PowerModel
from edgeweave.generation.answer import Answer, GenerationStats, TokenEvent
from edgeweave.generation.backend import Backend
from edgeweave.generation.batching import Step
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.sampling import SamplingParams
from edgeweave.generation.tools import OutputSpec
from edgeweave.serving.tool_prompt import render_messages
from edgeweave.wire.protocol import BackendLoad, Message, ModelInfo

EWMA = 0.3  # weight of the newest measurement in the moving averages
WARMUP = SamplingParams(max_tokens=16, ignore_eos=True)


class QueueFull(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"queue full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class Ticket:
    """``places`` in the queue, held from admission until :meth:`ModelWorker.release`.  The
    request's generations run under it, at most ``places`` at a time (the others wait for a turn
    outside the backend)."""

    places: int = 1
    cancel: threading.Event = field(default_factory=threading.Event)  # cancels all its generations
    released: bool = False
    generations: list[GenerationStats] = field(default_factory=list)  # in the order they were started
    _turns: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._turns = asyncio.Semaphore(self.places)

    @property
    def busy_s(self) -> float:
        """Its generations' share of the runtime's time, all together."""
        return sum(s.busy_s for s in self.generations)


_END = object()


@dataclass
class _Sink:
    """Where one answer's events go: a queue on the event loop that asked for it."""

    loop: asyncio.AbstractEventLoop
    answer: Answer
    request_cancel: threading.Event  # the ticket's: copied onto the answer's own flag before each step
    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, item: object) -> None:
        self.queue.put_nowait(item)
        if item is _END or isinstance(item, BaseException):
            self.ended.set()


def _deliver(items: list[tuple[_Sink, object]]) -> None:
    for sink, item in items:
        sink.put(item)


class ModelWorker:
    def __init__(self, spec: ModelSpec, backend: Backend, power: PowerModel, cores: int) -> None:
        self.spec = spec
        self.backend = backend
        self.name = spec.name
        self.max_queue = spec.max_queue
        self.slots = backend.slots
        self._busy_share = min(1.0, (spec.threads or cores) / cores)  # of the CPU a generation keeps busy
        self._marginal_w = (power.max_w - power.idle_w) * self._busy_share
        self.in_system = 0  # admitted and not yet finished (running + queued)
        self.completed = 0
        self.rejected = 0
        self.decode_tok_s = 0.0
        self.prefill_tok_s = 0.0
        self.service_s = 0.0  # moving average of one request's time on the backend
        self._inbox: list[_Sink] = []
        self._sinks: dict[int, _Sink] = {}  # id(answer) -> sink, for the answers the loop holds
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"backend-{spec.name}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> int:
        return len(self.backend.batch.running)

    # --- admission -------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """Generations the worker holds at once, running and waiting."""
        return self.slots + self.max_queue

    def admit(self, places: int = 1) -> Ticket:
        """Take ``places`` (at most :attr:`capacity`) or raise :class:`QueueFull`.  Synchronous:
        no await between the check and the increment, so a burst cannot overshoot the bound."""
        if not 1 <= places <= self.capacity:
            raise ValueError(f"{places} places: {self.name} holds 1 to {self.capacity}")
        if self.in_system + places > self.capacity:
            self.rejected += 1
            raise QueueFull(max(1, math.ceil((self.in_system + places - 1) * self.service_s / self.slots)))
        self.in_system += places
        return Ticket(places)

    def release(self, ticket: Ticket) -> None:
        if not ticket.released:
            ticket.released = True
            self.in_system -= ticket.places

    # --- generation ------------------------------------------------------------------
    def chat_ids(self, messages: Sequence[Message], output: OutputSpec | None = None) -> list[int]:
        """``messages`` rendered with the model's chat template (and ``output``'s tools), ready for a reply."""
        return render_messages(self.backend.tokenizer, messages, output)

    def stream(
        self, ticket: Ticket, prompt: Sequence[int], params: SamplingParams, resume: Sequence[int]
    ) -> AsyncIterator[TokenEvent]:
        """One generation under ``ticket`` (its statistics: ``ticket.generations``, in call order);
        it waits for one of the ticket's turns before it joins the backend's queue."""
        answer = self.backend.answer(prompt, params, resume)
        ticket.generations.append(answer.stats)
        return self._events(ticket, answer)

    async def prefill(self, ticket: Ticket, prompt: Sequence[int], resume: Sequence[int]) -> GenerationStats:
        """Evaluate a context into the prompt cache; nothing is generated."""
        answer = self.backend.answer(prompt, resume_tokens=resume, generate=False)
        ticket.generations.append(answer.stats)
        async for _ in self._events(ticket, answer):
            pass
        return answer.stats

    async def _events(self, ticket: Ticket, answer: Answer) -> AsyncIterator[TokenEvent]:
        async with ticket._turns:
            sink = _Sink(asyncio.get_running_loop(), answer, ticket.cancel)
            with self._wake:
                self._inbox.append(sink)
                self._wake.notify()
            try:
                while (item := await sink.queue.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    assert isinstance(item, TokenEvent)
                    yield item
            finally:
                answer.cancel.set()  # a consumer that stops early stops the backend too
                await sink.ended.wait()

    def _run(self) -> None:
        """The backend thread: take new answers, step the batch, hand out what it produced."""
        batch = self.backend.batch
        while True:
            with self._wake:
                while not self._inbox and batch.idle and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                for sink in self._inbox:
                    batch.submit(sink.answer)
                    self._sinks[id(sink.answer)] = sink
                self._inbox.clear()
            for sink in self._sinks.values():
                if sink.request_cancel.is_set():
                    sink.answer.cancel.set()
            try:
                step = batch.step()
            except Exception as e:  # noqa: BLE001 - a failure outside the runtime: fail its answers, keep serving
                step = Step(ended=batch.abort(e))
            out: dict[asyncio.AbstractEventLoop, list[tuple[_Sink, object]]] = defaultdict(list)
            for answer, event in step.events:
                sink = self._sinks[id(answer)]
                out[sink.loop].append((sink, event))
            for answer in step.ended:
                sink = self._sinks.pop(id(answer))
                out[sink.loop].append((sink, answer.error or _END))
                if answer.error is None and not answer.cancel.is_set():
                    self.completed += answer.generate
                    self._update_rates(answer.stats)
            for loop, items in out.items():
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_deliver, items)

    def warm_up(self) -> None:
        """One short generation: first-call allocations happen here, and it gives
        the first measured speeds (what the coordinator sees before any request)."""
        self.backend.generate(chat_prompt(self.backend, "hello"), WARMUP)
        self._update_rates(self.backend.last_stats)

    def _update_rates(self, s: GenerationStats) -> None:
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
            slots=self.slots,
        )

    def load(self) -> BackendLoad:
        running = self.running
        return BackendLoad(
            model=self.name,
            backend=self.backend.name,
            running=running,
            queued=max(0, self.in_system - running),
            max_queue=self.max_queue,
            completed=self.completed,
            rejected=self.rejected,
            decode_tok_s=round(self.decode_tok_s, 1),
            prefill_tok_s=round(self.prefill_tok_s, 1),
            joules_per_token=self.joules_per_token,
        )

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()
        self.backend.close()
