"""One live answer that can move between endpoints mid-stream, steered by a controller.

The client reads one stream.  The answer starts where the controller's
:class:`~coordinator.streaming.controller.Opening` says (one set of tiers, or a
race, :func:`coordinator.streaming.race.race`).  After every token sent, and
whenever the source fails or sends nothing for ``stall_s``, the controller may
name a target; the target is opened with the prompt plus every token id sent
so far as ``resume_tokens`` (it prefills them: no KV is transferred) and the
same sampling, logprobs included.  A move with ``stop_source`` stops the
source at once (the reader's buffer covers the move; if the target fails, the
answer resumes on the source the same way).  Otherwise, until the target
produces its first token, tokens still arriving from the source are held
back; at that first token the source is closed, the held tokens are dropped
(they were *delayed*: the target regenerates their positions) and the stream
continues from the target; if the target fails instead, the held tokens are
released and the source goes on (or, if it had failed, they are the last the
client gets).  A token the source produced as it was stopped counts as held
back too: every token an endpoint produced is sent or counted as delayed.  No
token is lost or repeated, in order; each delta (its logprob included) reaches
the client as the endpoint produced it.
A controller may also name an endpoint to *warm* after a token
(:class:`~coordinator.streaming.controller.Warm`): a background task prefills
the answer's context there (the caller's ``prefill``, ``POST /v1/prefill``), the
prompt and the tokens sent so far, then round after round the tokens sent
since, until the answer moves or ends; each finished round is reported to the
controller (:class:`~coordinator.streaming.controller.Warming`) and counted in
the outcome.  A warm never touches the stream: a failed round just ends it.
When the answer closes, the controller settles it from the
:class:`~coordinator.streaming.controller.Outcome`: every route's share, the
warm rounds, and the migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

from coordinator.streaming.controller import (
    Controller,
    Migration,
    Move,
    Outcome,
    Progress,
    Share,
    Trigger,
    Warm,
    Warming,
    WarmRound,
)
from coordinator.streaming.race import OpenRoute, race
from coordinator.streaming.routes import EndpointFailed, Job, Route
from edgeweave.generation.logprobs import TokenLogprob
from edgeweave.serving.http_errors import ApiError
from edgeweave.serving.openai_serving import Answer, Delta
from edgeweave.wire.client import CallError
from edgeweave.wire.protocol import PrefillResult

log = logging.getLogger("edgeweave.streaming")
Prefill = Callable[[Job], Awaitable[PrefillResult]]  # evaluate job's context on job.pin, generate nothing


class LiveAnswer(Answer):
    def __init__(self, job: Job, open_route: OpenRoute, controller: Controller, prefill: Prefill | None = None) -> None:
        super().__init__(job.pin or "")
        self.job = job
        self.routes: list[Route] = []  # every endpoint that worked on the answer, losers of races included
        self.migrations: list[Migration] = []
        self._open_route = open_route
        self._controller: Controller | None = controller
        self._opening = controller.opening()
        self._src: Route | None = None
        self._started = False  # an endpoint took the answer (start() returned)
        self._target: asyncio.Task[Route] | None = None
        self._prefill = prefill
        self.warms: list[WarmRound] = []
        self._warm: asyncio.Task[None] | None = None
        self._warming: Warming | None = None
        self._warm_target = ""
        self._new_token = asyncio.Event()

    async def start(self) -> None:
        """Open the answer where the controller says (anywhere the pin allows if pinned); refusals and
        bad input surface here, before any response.  A race returns at the first token."""
        o = self._opening
        if o.second is None or self.job.pin is not None:
            self._src = await self._open(replace(self.job, tiers=() if self.job.pin else o.first))
        else:
            first, second = replace(self.job, tiers=o.first), replace(self.job, tiers=o.second)
            self._src = await race(self._open, first, second, o.second_after_s)
        self.endpoint = self._src.endpoint
        self.prompt_tokens = self._src.prompt_tokens
        self._started = True

    async def _open(self, job: Job) -> Route:
        """Every route goes through here: each one opened is a share of the answer, used or not."""
        route = await self._open_route(job)
        self.routes.append(route)
        return route

    async def _stop_warm(self) -> None:
        if self._warm is not None:
            self._warm.cancel()
            with contextlib.suppress(BaseException):
                await self._warm
        self._warm, self._warming = None, None

    async def _warm_rounds(self, target: str, ids: list[int]) -> None:
        """Prefill prompt + ``ids`` on ``target``, then again whenever ``ids`` grew (the endpoint's prompt
        cache keeps what earlier rounds evaluated), until cancelled; a failed round ends the warm."""
        assert self._prefill is not None
        held, covered = 0, 0  # context the last finished round left there, and the answer tokens it covered
        while True:
            n = len(ids)
            job = replace(self.job, pin=target, tiers=(), resume_tokens=(*self.job.resume_tokens, *ids[:n]))
            try:
                res = await self._prefill(job)
            except (CallError, EndpointFailed, ApiError, OSError) as e:
                log.info("warming %s ended: %s", target, e)
                self._warming = None
                return
            except asyncio.CancelledError:
                if held:  # a round cut short may have run there anyway: counted as if it had (a first one
                    # is not: its size in the endpoint's tokens is not known yet)
                    context = held + n - covered
                    self.warms.append(WarmRound(target, context, context - held, 0.0))
                raise
            held, covered = res.prompt_tokens, n
            self.warms.append(WarmRound(target, held, max(held - res.cached_tokens, 0), res.energy_j))
            self._warming = Warming(target, held)
            while len(ids) == n:
                self._new_token.clear()
                await self._new_token.wait()

    async def close(self) -> None:
        await self._stop_warm()
        if self._target is not None:
            self._target.cancel()
            with contextlib.suppress(BaseException):
                await self._target
            self._target = None
        for route in self.routes:
            await route.close()
        self._src = None
        if self._controller is not None:  # once: what the answer cost, every route counted
            controller, self._controller = self._controller, None
            self.cost_usd = controller.settle(self._outcome())

    def _outcome(self) -> Outcome:
        base = len(self.job.resume_tokens)
        shares = tuple(
            Share(r.endpoint, r.prompt_tokens, len(r.job.resume_tokens) - base, r.generated, r.ttft_s, r.cached_tokens)
            for r in self.routes
        )
        return Outcome(
            self.endpoint if self._started else None, shares, tuple(self.migrations), self.prompt_tokens,
            self.completion_tokens, self.finish_reason, tuple(self.warms),
        )  # fmt: skip

    async def _open_target(self, target: str, ids: tuple[int, ...], held: int = 0) -> Route:
        s = self.job.sampling
        job = replace(
            self.job,
            pin=target,
            tiers=(),
            resume_tokens=(*self.job.resume_tokens, *ids),
            sampling=s.model_copy(update={"max_tokens": max(s.max_tokens - len(ids), 1)}),
        )
        route = await self._open(job)
        route.cached_tokens = held  # what a warm left there; a device says at its end what it reused
        await route.peek()
        return route

    async def deltas(self) -> AsyncIterator[Delta]:
        assert self._src is not None and self._controller is not None, "start() first"
        controller = self._controller
        ids: list[int] = []
        sent = 0
        resumable = True  # every token sent so far has a known id
        held: list[Delta] = []
        first_at: float | None = None
        move: tuple[Move, float] | None = None  # the move under way, and when it was decided
        stopped: str | None = None  # the source, stopped for a move: where to resume if the target fails
        nxt: asyncio.Future[Delta | None] | None = asyncio.ensure_future(self._src.next())

        last_logprob: TokenLogprob | None = None

        def send(d: Delta) -> Delta:
            nonlocal sent, resumable, last_logprob
            sent += 1
            last_logprob = d.logprob
            if d.token_id is None:
                resumable = False
            else:
                ids.append(d.token_id)
                self._new_token.set()
            return d

        def ask(trigger: Trigger, now: float) -> Move | Warm | None:
            if self._target is not None or not resumable:
                return None  # one move at a time; a token whose id is unknown cannot be resumed after
            since = now - first_at if first_at is not None else 0.0
            warm = self._warming or (Warming(self._warm_target, 0) if self._warm is not None else None)
            return controller.decide(
                Progress(trigger, self.endpoint, sent, since, self.prompt_tokens, warm, last_logprob)
            )

        def begin(m: Move | Warm | None) -> None:
            nonlocal move
            if isinstance(m, Warm):
                if self._warm is None and self._prefill is not None and m.target != self.endpoint:
                    self._warm_target = m.target
                    self._warm = asyncio.ensure_future(self._warm_rounds(m.target, ids))
                return
            if m is not None and self._target is None and resumable:
                w = self._warming
                warmed = w.cached if w is not None and w.endpoint == m.target else 0
                if self._warm is not None:
                    self._warm.cancel()  # no round competes with the move's prefill
                self._target = asyncio.ensure_future(self._open_target(m.target, tuple(ids), warmed))
                move = (m, time.monotonic())

        async def stop_source() -> None:
            """Close the source; a token it already produced that the loop has not taken yet is held back
            with the rest (the target regenerates its position)."""
            nonlocal nxt
            assert self._src is not None
            if nxt is not None:
                taken = nxt.done() and not nxt.cancelled() and nxt.exception() is None
                if taken and (d := nxt.result()) is not None:
                    held.append(d)
                nxt.cancel()
                with contextlib.suppress(BaseException):
                    await nxt
                nxt = None
            await self._src.close()

        try:
            while True:
                target = self._target
                waits = {f for f in (nxt, target) if f is not None}
                if not waits:
                    raise EndpointFailed(f"{self.endpoint} failed and no endpoint could take the answer over")
                timeout = self._opening.stall_s if target is None and nxt is not None else None
                done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not done:  # the source stalled
                    begin(ask("stall", time.monotonic()))
                    continue
                if target is not None and target in done:
                    assert move is not None
                    m, since = move
                    self._target = None
                    try:
                        route = target.result()
                    except (EndpointFailed, ApiError, OSError) as e:
                        if stopped is not None:  # a move that stopped the source failed: resume where it was
                            begin(Move(stopped, "failure"))
                            stopped = None
                            continue
                        for d in held:  # the source's tokens stand: release what was held back
                            yield send(d)
                        held.clear()
                        if nxt is None:  # the source had failed or been stopped: the answer breaks off here
                            why = f"{self.endpoint} failed and {m.target} could not take over ({e})"
                            raise EndpointFailed(why) from None
                        continue
                    await stop_source()
                    await self._stop_warm()  # the answer moved: a warm of anywhere else is moot now
                    migration = Migration(self.endpoint, m.target, sent, len(held), time.monotonic() - since, m.reason)
                    log.info("answer moved %s -> %s after %d tokens (%s, %d delayed, %.3f s)", migration.source,
                             migration.target, sent, m.reason, len(held), migration.seconds)  # fmt: skip
                    self.migrations.append(migration)
                    held.clear()
                    self._src, self.endpoint, stopped = route, m.target, None
                    nxt = asyncio.ensure_future(self._src.next())
                    continue
                assert nxt is not None
                try:
                    item = nxt.result()
                except EndpointFailed:
                    nxt = None
                    begin(ask("failure", time.monotonic()))
                    if self._target is None:
                        raise
                    continue
                if item is None:
                    for d in held:  # a target was still starting: the source finished first
                        yield send(d)
                    break
                nxt = asyncio.ensure_future(self._src.next())
                if self._target is not None:
                    held.append(item)
                    continue
                now = time.monotonic()
                first_at = first_at or now
                yield send(item)
                m = ask("token", now)
                begin(m)
                if isinstance(m, Move) and m.stop_source and self._target is not None:
                    await stop_source()
                    stopped = self.endpoint
            route = self._src
            self.finish_reason = route.finish_reason
            self.completion_tokens = sent
            self.uncertainty = route.uncertainty
            if not self.prompt_tokens:  # a cloud endpoint says at the end, resumed tokens included
                resumed_here = len(route.job.resume_tokens) - len(self.job.resume_tokens)
                self.prompt_tokens = max(route.prompt_tokens - resumed_here, 0)
        finally:
            if nxt is not None and not nxt.done():
                nxt.cancel()
            await self.close()


@asynccontextmanager
async def live_answer(
    job: Job, open_route: OpenRoute, controller: Controller, prefill: Prefill | None = None
) -> AsyncIterator[LiveAnswer]:
    """A started answer for ``job``, closed (and settled) on exit (``prefill``: how a warm is run)."""
    answer = LiveAnswer(job, open_route, controller, prefill)
    try:
        await answer.start()
        yield answer
    finally:
        await answer.close()
