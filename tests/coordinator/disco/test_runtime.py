"""DiSCo's live controller on fake routes and a fake dispatcher (no processes): the forced move works
however fast the source is, a client's ``prefer`` is honoured unless it allows cost moves, a race's
loser tier is warmed, and a warmed target is charged only for what it did not hold."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from coordinator.cluster.metrics import CoordinatorMetrics
from coordinator.cluster.placement import Candidate, Tier
from coordinator.disco.policy import DiscoPolicy, DispatchPlan, cost_moves_allowed
from coordinator.disco.runtime import DiscoController, DiscoRuntime
from coordinator.streaming.answer import live_answer
from coordinator.streaming.controller import Move, Outcome, Progress, Share, Warm, Warming, WarmRound
from coordinator.streaming.routes import Job
from edgeweave.config import DiscoConfig
from edgeweave.generation.sampling import SamplingParams
from tests.coordinator.streaming.test_answer import TRUE, Behaviour, Endpoints, read

ENDPOINTS = {"device": "device:a", "cloud": "cloud:b"}


@dataclass
class Registry:
    version: int = 0
    devices: dict[str, object] = field(default_factory=dict)  # no device has measured its energy


class Dispatcher:
    """The two fake endpoints, each the best of its tier."""

    registry = Registry()

    def fallback(self, model: str, endpoint: str) -> str:
        return ENDPOINTS["cloud" if endpoint.startswith("device") else "device"]

    def best(self, model: str, tier: Tier) -> Candidate:
        return Candidate(ENDPOINTS[tier], tier, 0, None, 50.0 if tier == "device" else 0.0)


def runtime(**cfg: object) -> DiscoRuntime:
    # device tokens at 0.05 J * 2e-5 $/J = 1e-6 $ against the cloud's 8e-6: a long cloud answer pays to move
    disco = DiscoConfig(usd_per_prompt_token=2e-6, usd_per_output_token=8e-6, usd_per_joule=2e-5,
                        default_joules_per_token=0.05, device_prefill_tok_s=1000.0, reading_tok_s=5.0, **cfg)  # type: ignore[arg-type]  # fmt: skip
    rt = DiscoRuntime(DiscoPolicy(disco), Dispatcher(), CoordinatorMetrics())  # type: ignore[arg-type]
    rt.policy.plan("m", 100, {"device", "cloud"})
    for _ in range(10):
        rt.policy.observe_answer("m", 300)  # remaining lengths known: moves can be priced
    return rt


def job(max_tokens: int = len(TRUE)) -> Job:
    return Job("m", SamplingParams(max_tokens=max_tokens), prompt="hi")


async def test_a_forced_move_happens_even_when_the_source_outruns_the_target() -> None:
    # the device makes every token at once; the cloud needs a while for its first: without stopping the
    # source the answer would end before the target started, and the move would never be seen
    eps = Endpoints({"device:a": [], "cloud:b": [Behaviour(prefill_s=0.05)]})
    rt = runtime(migrate=False)
    ctl = DiscoController(rt, job(), DispatchPlan("device"), 1, 2, forced_after=4)
    async with live_answer(job(), eps.open, ctl) as answer:
        got = await read(answer)
    assert [d.token_id for d in got] == TRUE
    assert answer.endpoint == "cloud:b"
    assert [(r.endpoint, len(r.job.resume_tokens)) for r in eps.opened] == [("device:a", 0), ("cloud:b", 4)]


def test_prefer_is_honoured_unless_the_request_allows_cost_moves() -> None:
    assert cost_moves_allowed("auto", False, "cloud") and cost_moves_allowed("device", False, "cloud")
    assert not cost_moves_allowed("cloud", False, "cloud") and cost_moves_allowed("cloud", True, "cloud")
    progress = Progress("token", "cloud:b", 40, 2.0, 100)  # 40 tokens sent, 10 read: the buffer hides a move
    cost = Move("device:a", "cost", stop_source=True)
    auto = DiscoController(runtime(), job(1000), DispatchPlan("cloud"), 100, None, None)
    assert auto.decide(progress) == cost
    kept = DiscoController(runtime(), job(1000), DispatchPlan("cloud"), 100, None, None, prefer="cloud")
    assert kept.decide(progress) is None
    allowed = DiscoController(runtime(), job(1000), DispatchPlan("cloud"), 100, None, None, "cloud", True)
    assert allowed.decide(progress) == cost
    forced = DiscoController(runtime(), job(1000), DispatchPlan("cloud"), 100, None, 40, prefer="cloud")
    assert forced.decide(progress) == Move("device:a", "forced", stop_source=True)  # forced moves regardless


def test_a_races_loser_tier_is_warmed_and_a_warm_the_move_waits_for() -> None:
    rt = runtime()
    # a 1,000-token prompt: a move now (1 s of phone prefill) is more than the 4 tokens sent can hide; at
    # token 4 the cloud's pace is measured, and the move a warm leads to pays
    start = Progress("token", "cloud:b", 4, 0.08, 1000)
    assert DiscoController(rt, job(2000), DispatchPlan("cloud"), 1000, None, None).decide(start) == Warm("device:a")
    # a 5,000-token prompt: the phone's prefill of it (5e-3 $) beats what the remaining 260 tokens save,
    # unless a race's loser on the phone prefilled it already
    long = Progress("token", "cloud:b", 40, 0.8, 5000)
    assert DiscoController(runtime(), job(8000), DispatchPlan("cloud"), 5000, None, None).decide(long) is None
    raced = DiscoController(runtime(), job(8000), DispatchPlan("device", "cloud"), 5000, None, None)
    assert raced.decide(long) == Move("device:a", "cost", stop_source=True)
    # fresh policy, the warm has covered nothing yet: with prefill at 1 ms/token the rounds catch up
    # quickly, and a move waits for them while the caught-up move still pays
    rt = runtime()
    ctl = DiscoController(rt, job(1000), DispatchPlan("cloud"), 100, None, None)
    at_start = Progress("token", "cloud:b", 40, 0.8, 100, Warming("device:a", 0))
    assert ctl.decide(at_start) is None
    unwarmed = Progress("token", "cloud:b", 40, 0.8, 100)  # no warm under way: the move prefills it all now
    assert ctl.decide(unwarmed) == Move("device:a", "cost", stop_source=True)
    caught_up = Progress("token", "cloud:b", 40, 0.8, 100, Warming("device:a", 139))
    assert ctl.decide(caught_up) == Move("device:a", "cost", stop_source=True)


def test_settling_charges_warm_rounds_and_only_what_the_target_did_not_hold() -> None:
    rt = runtime()
    ctl = DiscoController(rt, job(), DispatchPlan("cloud"), 100, None, None)
    warms = (WarmRound("device:a", 120, 120, 0.0), WarmRound("device:a", 135, 15, 0.0))
    shares = (Share("cloud:b", 100, 0, 40, 0.1), Share("device:a", 140, 40, 260, 0.01, cached=135))
    total = ctl.settle(Outcome("device:a", shares, (), 100, 300, "length", warms))
    device_token = 0.05 * 2e-5
    expected = 100 * 2e-6 + 40 * 8e-6 + (120 + 15) * device_token + (140 - 135 + 260) * device_token
    assert total == pytest.approx(expected)
    assert rt.policy.spend.usd["device"] == pytest.approx((135 + 5 + 260) * device_token)
