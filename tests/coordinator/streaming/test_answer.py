"""The live answer's migration state machine on fake routes (no processes): moves for cost, failures,
stalls, races, logprobs carried across a move, and a property test that no interleaving of source
tokens, target prefill, failures and stalls loses or repeats a token, or miscounts one.  The
examples order their endpoints by what the other has produced (:attr:`Behaviour.wait_for`), not by
the clock, so they hold on a loaded machine; the property holds whatever the timing."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.streaming.answer import LiveAnswer, live_answer
from coordinator.streaming.controller import Move, Opening, Outcome, Progress, Warm
from coordinator.streaming.routes import EndpointFailed, Job, Route
from edgeweave.generation.logprobs import TokenLogprob
from edgeweave.generation.sampling import SamplingParams
from edgeweave.serving.openai_serving import Delta
from edgeweave.wire.protocol import PrefillResult

N = 12  # tokens of the one true generation
TRUE = list(range(100, 100 + N))
STALL_S = 0.03


def logprob(token: int) -> TokenLogprob:
    return TokenLogprob(id=token, token=f"t{token}", bytes=[], logprob=-token / 1000)


@dataclass(frozen=True)
class Behaviour:
    """How one opening of an endpoint goes."""

    prefill_s: float = 0.0
    token_s: float = 0.0
    fail_after: int | None = None  # produce this many tokens, then break off
    stall_after: int | None = None  # produce this many tokens, then go silent for stall_for
    stall_for: float = 10 * STALL_S
    refuse: bool = False  # fail at open
    wait_for: tuple[int, int] | None = None  # (n, k): before its token n, wait until the other endpoint made k


class FakeRoute(Route):
    def __init__(self, endpoint: str, job: Job, how: Behaviour, peers: list[FakeRoute] | None = None) -> None:
        super().__init__(endpoint, job, AsyncExitStack(), asyncio.get_running_loop().time())
        self.how = how
        self.peers = peers if peers is not None else []
        self.yielded: list[Delta] = []
        self.closed = False

    async def _other_made(self, k: int) -> None:
        while not any(r.generated >= k for r in self.peers if r.endpoint != self.endpoint):
            await asyncio.sleep(0)

    async def deltas(self) -> AsyncIterator[Delta]:
        start = len(self.job.resume_tokens)
        assert list(self.job.resume_tokens) == TRUE[:start], "resumed after a wrong prefix"
        await asyncio.sleep(self.how.prefill_s)
        for n, token in enumerate(TRUE[start : start + self.job.sampling.max_tokens]):
            if n == self.how.fail_after:
                raise EndpointFailed(f"{self.endpoint} broke")
            if n == self.how.stall_after:
                await asyncio.sleep(self.how.stall_for)
            if self.how.wait_for is not None and n == self.how.wait_for[0]:
                await self._other_made(self.how.wait_for[1])
            if n:
                await asyncio.sleep(self.how.token_s)
            lp = logprob(token) if self.job.sampling.logprobs is not None else None
            self.yielded.append(Delta(f"t{token}", token, lp))
            yield self.yielded[-1]
        self.finish_reason = "length"

    async def close(self) -> None:
        self.closed = True
        await super().close()


@dataclass
class Endpoints:
    """Two fake endpoints; each opening takes the next scripted behaviour (then a healthy one)."""

    scripts: dict[str, list[Behaviour]]
    opened: list[FakeRoute] = field(default_factory=list)

    async def open(self, job: Job) -> Route:
        endpoint = job.pin or {"device": "device:a", "cloud": "cloud:b"}[job.tiers[0] if job.tiers else "device"]
        script = self.scripts[endpoint]
        how = script.pop(0) if script else Behaviour()
        if how.refuse:
            raise EndpointFailed(f"{endpoint} refused")
        route = FakeRoute(endpoint, job, how, self.opened)
        self.opened.append(route)
        return route


@dataclass
class Scripted:
    """A controller that moves at the given token counts and moves to the other endpoint on failures and stalls."""

    move_at: frozenset[int] = frozenset()
    stop_source: bool = False
    opening_: Opening = Opening()  # no stall timeout: only the tests about stalls time the source
    asked: list[Progress] = field(default_factory=list)
    outcome: Outcome | None = None

    def opening(self) -> Opening:
        return self.opening_

    def decide(self, progress: Progress) -> Move | None:
        self.asked.append(progress)
        there = "cloud:b" if progress.source == "device:a" else "device:a"
        if progress.trigger != "token":
            return Move(there, progress.trigger)
        if progress.sent in self.move_at:
            return Move(there, "cost", self.stop_source)
        return None

    def settle(self, outcome: Outcome) -> float:
        assert self.outcome is None, "settled twice"
        self.outcome = outcome
        return 0.25


def job(logprobs: int | None = None) -> Job:
    return Job("m", SamplingParams(max_tokens=N, logprobs=logprobs), prompt="hi")


async def read(answer: LiveAnswer) -> list[Delta]:
    return [d async for d in answer.deltas()]


async def test_a_move_holds_back_source_tokens_and_the_target_regenerates_them() -> None:
    # the target's first token comes once the source has made 5; the source makes no 7th before it
    eps = Endpoints({"device:a": [Behaviour(wait_for=(6, 1))], "cloud:b": [Behaviour(wait_for=(0, 5))]})
    ctl = Scripted(frozenset({3}))
    async with live_answer(job(), eps.open, ctl) as answer:
        got = await read(answer)
    assert [d.token_id for d in got] == TRUE
    assert ctl.outcome is not None and answer.cost_usd == 0.25
    (m,) = ctl.outcome.migrations
    assert (m.source, m.target, m.at_token, m.reason) == ("device:a", "cloud:b", 3, "cost")
    assert m.delayed_tokens >= 2  # the source kept generating while the target prefilled
    source, target = ctl.outcome.shares
    assert source.generated == 3 + m.delayed_tokens and target.resumed == 3 and target.generated == N - 3
    assert all(r.closed for r in eps.opened) and answer.endpoint == "cloud:b"
    assert ctl.outcome.completion_tokens == N and ctl.outcome.finish_reason == "length"


async def test_a_move_that_stopped_the_source_resumes_there_when_the_target_fails() -> None:
    eps = Endpoints({"device:a": [], "cloud:b": [Behaviour(refuse=True)]})
    ctl = Scripted(frozenset({4}), stop_source=True)
    async with live_answer(job(), eps.open, ctl) as answer:
        got = await read(answer)
    assert [d.token_id for d in got] == TRUE
    assert ctl.outcome is not None and [m.target for m in ctl.outcome.migrations] == ["device:a"]
    assert [len(r.job.resume_tokens) for r in eps.opened] == [0, 4]  # the source reopened after 4 tokens


async def test_a_failed_source_moves_and_with_nowhere_to_go_the_client_gets_the_error() -> None:
    eps = Endpoints({"device:a": [Behaviour(fail_after=5)], "cloud:b": []})
    ctl = Scripted()
    async with live_answer(job(), eps.open, ctl) as answer:
        assert [d.token_id for d in await read(answer)] == TRUE
    assert ctl.outcome is not None and ctl.outcome.migrations[0].reason == "failure"
    eps = Endpoints({"device:a": [Behaviour(fail_after=5)], "cloud:b": [Behaviour(refuse=True)]})
    got: list[int | None] = []
    with pytest.raises(EndpointFailed, match="could not take over"):
        async with live_answer(job(), eps.open, Scripted()) as answer:
            async for d in answer.deltas():
                got.append(d.token_id)
    assert got == TRUE[:5]


async def test_a_stalled_source_moves() -> None:
    eps = Endpoints({"device:a": [Behaviour(stall_after=2, stall_for=math.inf)], "cloud:b": []})
    ctl = Scripted(opening_=Opening(stall_s=0.3))  # long enough that the healthy target never seems stalled
    async with live_answer(job(), eps.open, ctl) as answer:
        assert [d.token_id for d in await read(answer)] == TRUE
    assert ctl.outcome is not None and [m.reason for m in ctl.outcome.migrations] == ["stall"]


async def test_a_race_keeps_the_first_token_and_counts_the_loser() -> None:
    eps = Endpoints({"device:a": [Behaviour(wait_for=(0, 2))], "cloud:b": []})  # the device waits out the race
    ctl = Scripted(opening_=Opening(("device",), ("cloud",), 0.0))
    async with live_answer(job(), eps.open, ctl) as answer:
        assert answer.endpoint == "cloud:b"
        assert [d.token_id for d in await read(answer)] == TRUE
    assert ctl.outcome is not None
    assert {s.endpoint for s in ctl.outcome.shares} == {"device:a", "cloud:b"} and all(r.closed for r in eps.opened)


async def test_logprobs_are_asked_of_the_target_and_relayed_across_a_move() -> None:
    eps = Endpoints({"device:a": [], "cloud:b": []})
    async with live_answer(job(logprobs=2), eps.open, Scripted(frozenset({4}), stop_source=True)) as answer:
        got = await read(answer)
    assert [d.logprob for d in got] == [logprob(t) for t in TRUE]
    assert [r.job.sampling.logprobs for r in eps.opened] == [2, 2]


async def test_a_token_without_an_id_cannot_be_resumed_after_so_the_controller_is_not_asked() -> None:
    class NoIds(FakeRoute):
        async def deltas(self) -> AsyncIterator[Delta]:
            async for d in super().deltas():
                yield Delta(d.text)

    async def open_route(j: Job) -> Route:
        return NoIds("cloud:b", j, Behaviour())

    ctl = Scripted(frozenset({1}))
    async with live_answer(job(), open_route, ctl) as answer:
        assert len(await read(answer)) == N
    assert ctl.asked == [] and ctl.outcome is not None and ctl.outcome.migrations == ()


def check_ledger(routes: list[FakeRoute], outcome: Outcome, got: list[Delta]) -> None:
    """Each token a route produced was sent to the client, or held back and counted as delayed by the
    migration away from that route: a migration's source made exactly the tokens it sent plus the
    delayed ones, and the last source what it sent.  A route that never carried the answer (a race's
    loser, a target the answer finished before) made at most its first token, which nobody was sent."""

    def route_of(d: Delta) -> FakeRoute:
        return next(r for r in routes if any(d is y for y in r.yielded))

    carried: list[FakeRoute] = []
    at = 0  # tokens sent before the current source took over
    for m in outcome.migrations:
        src = route_of(got[at]) if m.at_token > at else routes[0]  # a source that sent nothing: the first
        assert src.endpoint == m.source and len(src.job.resume_tokens) == at
        assert src.generated == m.at_token - at + m.delayed_tokens, (src.generated, m)
        carried.append(src)
        at = m.at_token
    if len(got) > at:
        last = route_of(got[at])
        assert last.generated == len(got) - at
        carried.append(last)
    for r in routes:
        if all(r is not c for c in carried):
            assert r.generated <= 1 and not any(d is y for d in got for y in r.yielded)


behaviours = st.builds(
    Behaviour,
    prefill_s=st.sampled_from([0.0, 0.001, 0.004]),
    token_s=st.sampled_from([0.0, 0.001, 0.003]),
    fail_after=st.none() | st.integers(0, N),
    stall_after=st.none() | st.integers(1, N),
    refuse=st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.lists(behaviours, max_size=3),
    target=st.lists(behaviours, max_size=3),
    move_at=st.frozensets(st.integers(1, N), max_size=3),
    stop_source=st.booleans(),
    race=st.booleans(),
)
def test_no_interleaving_loses_or_repeats_a_token(
    source: list[Behaviour], target: list[Behaviour], move_at: frozenset[int], stop_source: bool, race: bool
) -> None:
    """The client sees a prefix of the one uninterrupted generation, all of it unless the answer broke
    off with an error, each token once, in order, with its own logprob; every route opened is a share,
    and every token an endpoint produced is accounted for (:func:`check_ledger`)."""
    solo = Opening(("device", "cloud"), None, 0, STALL_S)
    opening = Opening(("device",), ("cloud",), 0.002, STALL_S) if race else solo
    ctl = Scripted(move_at, stop_source, opening)
    eps = Endpoints({"device:a": list(source), "cloud:b": list(target)})
    got: list[Delta] = []

    async def run() -> bool:
        try:
            async with live_answer(job(logprobs=1), eps.open, ctl) as answer:
                async for d in answer.deltas():
                    got.append(d)
        except EndpointFailed:
            return False
        return True

    finished = asyncio.run(asyncio.wait_for(run(), 30))
    ids = [d.token_id for d in got]
    assert ids == (TRUE if finished else TRUE[: len(ids)])
    assert [d.logprob for d in got] == [logprob(t) for t in TRUE[: len(ids)]]
    assert all(r.closed for r in eps.opened)
    if eps.opened:  # the answer opened: settled once, every route counted (a refusal opened nothing)
        assert ctl.outcome is not None
        shares = [(s.endpoint, s.generated) for s in ctl.outcome.shares]
        assert shares == [(r.endpoint, r.generated) for r in eps.opened]
        assert ctl.outcome.completion_tokens == (N if finished else 0)
        assert ctl.outcome.endpoint is not None or not got
        check_ledger(eps.opened, ctl.outcome, got)


@dataclass
class Prefills:
    """A fake ``POST /v1/prefill``: records each round's context, reports what an exact prompt cache would."""

    contexts: list[tuple[str, int]] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)

    async def __call__(self, j: Job) -> PrefillResult:
        assert j.pin is not None and list(j.resume_tokens) == TRUE[: len(j.resume_tokens)]
        n = 1 + len(j.resume_tokens)  # the fake prompt is one token
        cached = min(self.held.get(j.pin, 0), n)
        self.held[j.pin] = n
        self.contexts.append((j.pin, n))
        await asyncio.sleep(0)
        return PrefillResult(model=j.model, prompt_tokens=n, cached_tokens=cached, prefill_s=0.0, energy_j=0.1)


@dataclass
class Warms(Scripted):
    """Warms the other endpoint at token 2 and moves there once a warm round covers ``move_when`` tokens."""

    move_when: int = 6

    def decide(self, progress: Progress) -> Move | Warm | None:
        self.asked.append(progress)
        there = "cloud:b" if progress.source == "device:a" else "device:a"
        if progress.sent == 2:
            return Warm(there)
        if progress.warm is not None and progress.warm.cached >= self.move_when:
            return Move(there, "cost", stop_source=True)
        return None


async def test_a_warm_prefills_the_answer_in_rounds_and_the_move_there_prefills_only_the_rest() -> None:
    # the source waits for each warm round so that the rounds trail it (as a slower target does)
    eps = Endpoints({"device:a": [Behaviour(token_s=0.002)], "cloud:b": []})
    prefills = Prefills()
    ctl = Warms()
    async with live_answer(job(), eps.open, ctl, prefills) as answer:
        got = await read(answer)
    assert [d.token_id for d in got] == TRUE  # no token lost or repeated
    assert ctl.outcome is not None
    rounds = ctl.outcome.warms
    assert [c for _, c in prefills.contexts] == sorted({c for _, c in prefills.contexts})  # each round grew
    assert rounds[0].context_tokens == 3 and rounds[0].prefilled == 3  # prompt + the 2 tokens sent
    assert all(r.endpoint == "cloud:b" for r in rounds)
    assert sum(r.prefilled for r in rounds) == rounds[-1].context_tokens  # nothing evaluated twice
    (m,) = ctl.outcome.migrations
    target = ctl.outcome.shares[-1]
    assert m.target == "cloud:b" and target.resumed == m.at_token
    assert target.cached == rounds[-1].context_tokens >= 6  # what the warm left there
    warmed = [p.warm for p in ctl.asked if p.warm is not None]
    assert warmed and all(w.endpoint == "cloud:b" for w in warmed)


async def test_a_failed_warm_round_ends_the_warm_and_leaves_the_answer_alone() -> None:
    async def refuse(j: Job) -> PrefillResult:
        raise EndpointFailed("no /v1/prefill here")

    eps = Endpoints({"device:a": [], "cloud:b": []})
    ctl = Warms()
    async with live_answer(job(), eps.open, ctl, refuse) as answer:
        assert [d.token_id for d in await read(answer)] == TRUE
    assert ctl.outcome is not None and ctl.outcome.warms == () and ctl.outcome.migrations == ()
