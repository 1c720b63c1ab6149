"""One endpoint's part of a live answer (a *leg*), and racing two legs for the first token.

A leg keeps its route open on its own exit stack, counts the tokens it
produced (held-back ones included: they cost as much) and times its first
token from the moment it was asked for, which is what DiSCo's TTFT profiles
are fitted on.  :func:`race` starts one leg at once and another after a wait,
unless the first has produced a token by then, and keeps whichever token comes
first: the loser is closed (the endpoint stops generating) but stays on the
list of legs, since it was paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from coordinator.streaming.routes import Job, Route
from edgeweave.serving.openai_serving import Delta

OpenRoute = Callable[[Job], AbstractAsyncContextManager[Route]]
END = object()  # what :meth:`Leg.next` returns once the endpoint has finished


class Leg:
    def __init__(self, route: Route, stack: AsyncExitStack, job: Job, asked_at: float) -> None:
        self.route = route
        self.job = job
        self.asked_at = asked_at
        self.ttft_s: float | None = None
        self.generated = 0
        self._stack = stack
        self._it = route.deltas()
        self._head: list[Delta | object] = []

    @property
    def endpoint(self) -> str:
        return self.route.endpoint

    @classmethod
    async def open(cls, open_route: OpenRoute, job: Job) -> Leg:
        asked_at = time.monotonic()
        stack = AsyncExitStack()
        try:
            route = await stack.enter_async_context(open_route(job))
        except BaseException:
            await stack.aclose()
            raise
        return cls(route, stack, job, asked_at)

    async def next(self) -> Delta | object:
        """The next delta, or :data:`END`."""
        if self._head:
            return self._head.pop()
        item = await anext(self._it, END)
        if item is not END:
            self.generated += 1
            if self.ttft_s is None:
                self.ttft_s = time.monotonic() - self.asked_at
        return item

    async def peek(self) -> None:
        """Wait for the first delta (or the end) and keep it for :meth:`next`."""
        if not self._head:
            self._head.append(await self.next())

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._it.aclose()  # type: ignore[attr-defined]
        await self._stack.aclose()


async def race(open_route: OpenRoute, first: Job, second: Job, second_after_s: float) -> tuple[Leg, list[Leg]]:
    """(the leg whose first token came first, every leg opened); raises the first leg's error
    when neither produced a token."""
    legs: list[Leg] = []

    async def run(job: Job, delay: float) -> Leg:
        if delay > 0:
            await asyncio.sleep(delay)
        leg = await Leg.open(open_route, job)
        legs.append(leg)
        try:
            await leg.peek()
        except BaseException:
            await leg.close()
            raise
        return leg

    tasks = [asyncio.ensure_future(run(first, 0.0)), asyncio.ensure_future(run(second, second_after_s))]
    pending = set(tasks)
    winner: Leg | None = None
    try:
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            winner = next((t.result() for t in tasks if t in done and t.exception() is None), None)
    finally:
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(BaseException):
                await t
        for leg in legs:
            if leg is not winner:
                await leg.close()
    if winner is None:
        raise next(e for t in tasks if (e := t.exception()) is not None)
    return winner, legs
