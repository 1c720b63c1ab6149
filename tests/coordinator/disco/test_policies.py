"""DiSCo's pure policies on hand-made profiles: cost model, dispatch controllers, migration."""

from __future__ import annotations

import math

import pytest

from coordinator.disco.cost import ComputeProfile, CostModel, DeviceEnergy, Spend
from coordinator.disco.dispatch_policy import Decision, DeviceConstrained, DeviceTTFT, ServerConstrained, ServerTTFT
from coordinator.disco.migration import MigrationPolicy, StreamState
from coordinator.disco.policy import DiscoPolicy, DispatchPlan, OutputLengths
from coordinator.disco.runtime import PromptSize
from edgeweave.config import DiscoConfig

# server TTFTs: 0.1 .. 1.0 s, ten of each -> P(T > 0.9) = 0.1
SERVER = [round(0.1 * k, 1) for k in range(1, 11) for _ in range(10)]
LENGTHS = [100, 200, 300, 400, 1000]  # sum 2000
DEVICE = DeviceTTFT(0.05, 0.001)  # 0.15 s at 100 tokens, 1.05 s at 1000


def test_device_energy_from_a_measured_profile_and_the_exchange_rate() -> None:
    # 1 ms + 2 FLOPs per parameter at 1 GFLOP/s: 3 ms at 1M parameters, 7 ms at 3M
    profile = ComputeProfile.fit([(1_000_000, 0.003), (3_000_000, 0.007)])
    assert profile.overhead_s == pytest.approx(0.001) and profile.flops_per_s == pytest.approx(1e9)
    assert profile.seconds(500_000_000) == pytest.approx(1.001)
    energy = DeviceEnergy.measured(busy_w=4.0, decode_tok_s=20.0, prefill_tok_s=200.0)
    assert energy.joules(100, 10) == pytest.approx(100 * 0.02 + 10 * 0.2)
    with pytest.raises(ValueError, match="two or more"):
        ComputeProfile.fit([(1_000_000, 0.003)])
    costs = CostModel(1e-6, 4e-6, DeviceEnergy(0.02, 0.02), usd_per_joule=1e-5)
    assert costs.cost("cloud", 100, 10) == pytest.approx(100e-6 + 40e-6)
    assert costs.cost("device", 100, 10) == pytest.approx(110 * 0.02 * 1e-5)
    spend = Spend.empty()
    spend.offer(400)
    total = spend.charge(costs, "cloud", 100, 10) + spend.charge(costs, "device", 300, 5, resumed=20)
    assert total == pytest.approx(140e-6 + 325 * 0.02 * 1e-5)  # resumed tokens are prefilled, and paid for
    assert sum(spend.usd.values()) == pytest.approx(total)  # the budget is the sum of the requests' costs
    assert spend.budget_used("device") == 0.75 and spend.budget_used("cloud") == 0.25
    with pytest.raises(ValueError, match="positive"):
        DeviceEnergy(0.0, 1.0)


def test_device_ttft_fit_and_server_distribution() -> None:
    fit = DeviceTTFT.fit([(100, 0.15), (500, 0.55), (1000, 1.05)])
    assert fit.intercept_s == pytest.approx(0.05) and fit.per_token_s == pytest.approx(0.001)
    with pytest.raises(ValueError, match="two or more"):
        DeviceTTFT.fit([(100, 0.1), (100, 0.2)])
    server = ServerTTFT(SERVER, window=100)
    assert server.exceeds(0.9) == pytest.approx(0.1) and server.mean() == pytest.approx(0.55)
    server.add(5.0)  # the window drops the oldest (0.1) and keeps 100
    assert server.exceeds(0.9) == pytest.approx(0.11)


def test_device_constrained_spends_on_the_tail_then_on_the_mean() -> None:
    # budget 0.1: all of it protects the tail: device after the server's P90 (0.9 s)
    low = DeviceConstrained(0.1, DEVICE, ServerTTFT(SERVER), LENGTHS)
    assert low.decide(100) == Decision("race", pytest.approx(0.9)) and low.at_once_below == 0
    # budget 0.3: tail costs 0.1 * 2000 = 200 tokens; 400 left pay (1 - 0.1) * l for the shortest
    # prompts the device answers faster than the server's mean (0.55 s: l < 500): 90 + 180 = 270,
    # then 300 * 0.9 = 270 > 130 left: only 100 and 200 start the device at once
    mid = DeviceConstrained(0.3, DEVICE, ServerTTFT(SERVER), LENGTHS)
    assert mid.at_once_below == 201
    assert mid.decide(200) == Decision("race", 0.0) and mid.decide(300).device_wait_s == pytest.approx(0.9)
    none = DeviceConstrained(0.0, DEVICE, ServerTTFT(SERVER), LENGTHS)
    assert none.decide(50) == Decision("server") and math.isinf(none.wait_s)


def test_server_constrained_races_the_longest_prompts_the_budget_pays_for() -> None:
    # budget 0.5 of 2000 tokens = 1000: exactly the 1000-token prompt
    assert ServerConstrained(0.5, DEVICE, ServerTTFT(SERVER), LENGTHS).threshold == 1000
    c = ServerConstrained(0.75, DEVICE, ServerTTFT(SERVER), LENGTHS)  # 1500: 1000 + 400
    assert c.threshold == 400 and c.decide(400) == Decision("race") and c.decide(399) == Decision("device")
    assert math.isinf(ServerConstrained(0.1, DEVICE, ServerTTFT(SERVER), LENGTHS).threshold)
    tie = ServerConstrained(0.3, DEVICE, ServerTTFT(SERVER), [300, 300, 300, 100])  # 300 of 1000 fits once
    assert tie.threshold == 301  # equal prompts decide alike: none of the three races
    with pytest.raises(ValueError, match="budget"):
        ServerConstrained(1.5, DEVICE, ServerTTFT(SERVER), LENGTHS)


def test_controllers_refit_online_from_measurements() -> None:
    c = DeviceConstrained(0.1, DEVICE, ServerTTFT(SERVER, window=100), LENGTHS)
    for _ in range(50):
        c.observe_server(3.0)  # the server got slow: half the window is now 3 s
    assert c.wait_s == pytest.approx(3.0)
    for k in range(50):
        c.observe_device(100 + 10 * k, 0.1 + 0.002 * (100 + 10 * k))
    assert c.device.per_token_s == pytest.approx(0.002)


COSTS = CostModel(2e-6, 8e-6, DeviceEnergy(0.05, 0.05), usd_per_joule=2e-5)  # device 1e-6 $/token


def test_migration_needs_a_covering_buffer_and_a_saving() -> None:
    policy = MigrationPolicy(COSTS, reading_tok_s=5.0)
    s = StreamState("cloud", prompt_tokens=100, generated=40, since_first_token_s=2.0, remaining_estimate=200)
    assert policy.buffer(s) == 30  # 40 sent, 10 read
    # saving: (8e-6 - 1e-6) * 200 - device prefill of 140 tokens (1.4e-4) = 1.26e-3 > 0
    assert policy.saving(s) == pytest.approx(7e-6 * 200 - 140e-6)
    assert policy.should_migrate(s, migration_s=5.9, target_tok_s=20)  # 30 tokens >= 5 tok/s * 5.9 s
    assert not policy.should_migrate(s, migration_s=6.1, target_tok_s=20)  # the reader would catch up
    assert not policy.should_migrate(s, migration_s=1.0, target_tok_s=4)  # a device slower than reading
    back = StreamState("device", 100, 40, 2.0, 200)
    assert policy.saving(back) < 0 and not policy.should_migrate(back, 0.1, 100)  # the device is cheaper


def _policy(**kw: object) -> DiscoPolicy:
    cfg = DiscoConfig(usd_per_prompt_token=2e-6, usd_per_output_token=8e-6, usd_per_joule=2e-5, **kw)  # type: ignore[arg-type]
    return DiscoPolicy(cfg)


def test_plans_follow_the_controller_the_tiers_up_and_the_clients_preference() -> None:
    p = _policy(constrained="cloud", budget=0.5)
    for n in LENGTHS[:-1]:
        p.plan("m", n, {"device", "cloud"})
    # the 1000-token prompt is half the 2000 offered: it races, shorter ones stay on the device
    assert p.plan("m", 1000, {"device", "cloud"}) == DispatchPlan("device", "cloud")
    assert p.plan("m", 100, {"device", "cloud"}) == DispatchPlan("device")
    assert p.plan("m", 1000, {"cloud"}) == DispatchPlan("cloud")  # no device up: no race
    assert p.plan("m", 100, {"device", "cloud"}, prefer="cloud") == DispatchPlan("cloud")
    assert p.plan("m", 100, {"cloud"}, prefer="device") == DispatchPlan("cloud")  # a preference, not a pin
    assert p.spend.offered_prompt_tokens == 1000 + 1000 + 100 + 1000 + 100 + 100
    d = _policy(constrained="device", budget=0.1, cloud_ttft_s=0.9)  # server first, device after its P90
    plan = d.plan("m", 500, {"device", "cloud"})
    assert plan == DispatchPlan("cloud", "device", pytest.approx(0.9)) and plan.label == "cloud-then-device"
    with pytest.raises(ValueError, match="no tier"):
        d.plan("m", 10, set())


def test_remaining_length_is_the_mean_residual_of_finished_answers() -> None:
    out = OutputLengths()
    for n in range(10, 110, 10):  # 10, 20, ..., 100
        out.add(n)
    assert out.remaining(45, max_tokens=1000) == pytest.approx((5 + 15 + 25 + 35 + 45 + 55) / 6)
    assert out.remaining(45, max_tokens=80) == pytest.approx((5 + 15 + 25 + 35 + 35 + 35) / 6)
    assert out.remaining(100, 1000) == 0.0  # nothing seen ran longer
    assert OutputLengths().remaining(0, 100) == 0.0  # too few answers to price a migration


def test_policy_migrates_cloud_answers_to_a_cheaper_device_once_lengths_are_known() -> None:
    p = _policy(reading_tok_s=5.0, device_prefill_tok_s=1000.0)  # device 1e-6 $/token at 0.05 J/token
    p.plan("m", 100, {"device", "cloud"})
    args = ("m", "cloud", 100, 40, 2.0, 1000)
    assert not p.should_migrate(*args, target_tok_s=20, device=DeviceEnergy(0.05, 0.05))  # no lengths yet
    for _ in range(10):
        p.observe_answer("m", 300)
    # 260 tokens to come: (8e-6 - 1e-6) * 260 - 140 prefilled * 1e-6 > 0; migration 0.14 s hidden by 30 tokens
    assert p.should_migrate(*args, target_tok_s=20, device=DeviceEnergy(0.05, 0.05))
    cheap = DeviceEnergy(0.05, 0.05)
    assert not p.should_migrate("m", "device", 100, 40, 2.0, 1000, 1e9, cheap)  # the cloud costs more
    assert not _policy(migrate=False).should_migrate(*args, target_tok_s=20)


def test_charges_add_up_per_tier_and_price_each_device_by_its_energy() -> None:
    p = _policy()
    p.plan("m", 100, {"device", "cloud"})
    a = p.charge("cloud", 100, 10)
    b = p.charge("device", 100, 30, resumed=10, device=DeviceEnergy(0.05, 0.05))
    assert a == pytest.approx(100 * 2e-6 + 10 * 8e-6) and b == pytest.approx(140 * 0.05 * 2e-5)
    assert p.spend.usd == {"cloud": pytest.approx(a), "device": pytest.approx(b)}
    assert p.spend.budget_used("cloud") == 1.0 and p.spend.budget_used("device") == 1.0


def test_prompt_size_learns_characters_per_token() -> None:
    sizes = PromptSize()
    assert sizes.estimate(400) == 100  # the prior: 4 characters a token
    sizes.observe(300, 100)
    assert sizes.estimate(300) == 100 and sizes.estimate(1) == 1


def test_a_warm_is_charged_as_a_prefill_and_the_target_only_for_what_it_lacked() -> None:
    spend = Spend.empty()
    spend.offer(100)
    assert spend.charge_warm(COSTS, "device", 120) == pytest.approx(120 * 1e-6)
    assert spend.charge(COSTS, "device", 100, 60, resumed=40, cached=130) == pytest.approx((10 + 60) * 1e-6)
    assert spend.usd["device"] == pytest.approx(190e-6) and spend.prompt_tokens["device"] == 100  # prompt once


def test_a_warm_trailing_the_answer_catches_up_geometrically() -> None:
    policy = MigrationPolicy(COSTS, reading_tok_s=5.0)
    line = DeviceTTFT(0.03, 0.011)  # a CPU phone's prefill: 90 tokens/s against the cloud's 48
    # each round takes line(lag); the source makes 48 tok/s meanwhile: the lag shrinks by about 0.53 a round
    f = policy.forecast(1000, 4, 48.0, line, line.per_token_s)
    rp = 48 * 0.011
    lag_star = 48 * 0.03 / (1 - rp)  # the fixed point, about 3 tokens
    # it stops once a round would gain under a token: rp * ((1 - rp) * lag - r * intercept) < 1
    assert lag_star < f.lag < lag_star + 1 / (rp * (1 - rp))
    assert policy.caught_up(f.lag, 48.0, line, line.per_token_s)
    assert f.warmed + f.lag == pytest.approx(1000 + f.at_token)  # the rounds cover prompt + tokens sent
    slow = DeviceTTFT(0.03, 0.05)  # 20 tokens/s: never catches up, so a round never shortens the gap
    assert policy.caught_up(1000, 48.0, slow, slow.per_token_s)
    assert policy.forecast(1000, 4, 48.0, slow, slow.per_token_s).warmed == 0


def test_the_policy_warms_when_the_expected_move_pays_and_a_move_waits_for_it() -> None:
    fast = _policy(reading_tok_s=5.0, device_prefill_tok_s=1000.0)  # device 1e-6 $/token at 0.05 J/token
    fast.plan("m", 100, {"device", "cloud"})
    for _ in range(10):
        fast.observe_answer("m", 300)
    energy = DeviceEnergy(0.05, 0.05)
    args = ("m", "cloud", 100, 4, 0.08, 1000, 20.0, energy)  # 4 tokens in 0.08 s: 37.5 tok/s measured
    assert fast.should_warm(*args)
    assert not fast.should_warm("m", "cloud", 100, 5, 0.1, 1000, 20.0, energy)  # decided once, at token 4
    assert not fast.should_warm("m", "device", 100, 4, 0.08, 1000, 1e9, energy)  # the cloud costs more
    assert not DiscoPolicy(fast.cfg, warm=False).should_warm(*args)
    short = _policy(reading_tok_s=5.0, device_prefill_tok_s=1000.0)
    short.plan("m", 100, {"device", "cloud"})
    for _ in range(10):
        short.observe_answer("m", 6)  # answers end before a warm could pay back
    assert not short.should_warm(*args)
    # a move waits while the warm's rounds would still shorten its gap, and goes once they would not
    moving = ("m", "cloud", 100, 40, 1.0, 1000, 20.0, energy)
    assert fast.should_migrate(*moving)  # no warm: move now, prefilling all 140 tokens
    assert not fast.should_migrate(*moving, cached=100, warming=True)  # 40 tokens behind: wait a round
    assert fast.should_migrate(*moving, cached=139, warming=True)
