"""DiSCo's pure policies on hand-made profiles: cost model, dispatch controllers, migration."""

from __future__ import annotations

import math

import pytest

from coordinator.disco.cost import CostModel, DeviceEnergy, Spend
from coordinator.disco.dispatch_policy import Decision, DeviceConstrained, DeviceTTFT, ServerConstrained, ServerTTFT
from coordinator.disco.migration import MigrationPolicy, StreamState

# server TTFTs: 0.1 .. 1.0 s, ten of each -> P(T > 0.9) = 0.1
SERVER = [round(0.1 * k, 1) for k in range(1, 11) for _ in range(10)]
LENGTHS = [100, 200, 300, 400, 1000]  # sum 2000
DEVICE = DeviceTTFT(0.05, 0.001)  # 0.15 s at 100 tokens, 1.05 s at 1000


def test_device_energy_from_a_measured_profile_and_the_exchange_rate() -> None:
    energy = DeviceEnergy.from_profile(parameters=1_000_000, joules_per_token=0.02)
    assert energy.flops_per_token == 2e6 and energy.flops_per_joule == pytest.approx(1e8)
    costs = CostModel(1e-6, 4e-6, energy, usd_per_joule=1e-5)
    assert costs.server(100, 10) == pytest.approx(100e-6 + 40e-6)
    assert costs.device_usd(100, 10) == pytest.approx(110 * 0.02 * 1e-5)
    spend = Spend.empty()
    spend.offered_prompt_tokens = 400
    total = spend.charge(costs, "server", 100, 10) + spend.charge(costs, "device", 300, 5)
    assert sum(spend.usd.values()) == pytest.approx(total)  # the budget is the sum of the requests' costs
    assert spend.budget_used("device") == 0.75 and spend.budget_used("server") == 0.25


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


COSTS = CostModel(2e-6, 8e-6, DeviceEnergy.from_profile(1_000_000, 0.05), usd_per_joule=2e-5)  # device 1e-6 $/token


def test_migration_needs_a_covering_buffer_and_a_saving() -> None:
    policy = MigrationPolicy(COSTS, reading_tok_s=5.0)
    s = StreamState("server", prompt_tokens=100, generated=40, since_first_token_s=2.0, remaining_estimate=200)
    assert policy.buffer(s) == 30  # 40 sent, 10 read
    # saving: (8e-6 - 1e-6) * 200 - device prefill of 140 tokens (1.4e-4) = 1.26e-3 > 0
    assert policy.saving(s) == pytest.approx(7e-6 * 200 - 140e-6)
    assert policy.should_migrate(s, migration_s=5.9)  # 30 tokens >= 5 tok/s * 5.9 s
    assert not policy.should_migrate(s, migration_s=6.1)  # the reader would catch up
    back = StreamState("device", 100, 40, 2.0, 200)
    assert policy.saving(back) < 0 and not policy.should_migrate(back, 0.1)  # the device is cheaper
    assert policy.stalled(2.5) and not policy.stalled(0.5)
