"""Racing two routes for the first token.

:func:`race` opens one route at once and another after a wait, unless the
first has produced a token by then, and keeps whichever token comes first: the
loser is closed (the endpoint stops generating).  Every route is opened through
the caller's ``open_route``, which is where the caller records it: a loser, or a
route that broke off before its first token, was still paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from coordinator.streaming.routes import Job, Route

OpenRoute = Callable[[Job], Awaitable[Route]]


async def race(open_route: OpenRoute, first: Job, second: Job, second_after_s: float) -> Route:
    """The route whose first token came first; raises the first route's error when neither produced one
    (every route opened is closed by then, won or not)."""
    routes: list[Route] = []

    async def run(job: Job, delay: float) -> Route:
        if delay > 0:
            await asyncio.sleep(delay)
        route = await open_route(job)
        routes.append(route)
        await route.peek()
        return route

    tasks = [asyncio.ensure_future(run(first, 0.0)), asyncio.ensure_future(run(second, second_after_s))]
    pending = set(tasks)
    winner: Route | None = None
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
        for route in routes:
            if route is not winner:
                await route.close()
    if winner is None:
        raise next(e for t in tasks if (e := t.exception()) is not None)
    return winner
