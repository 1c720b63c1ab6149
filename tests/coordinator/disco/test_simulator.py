"""DiSCo's simulator on hand-made profiles: races, baselines and a migration, checked by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coordinator.disco.baselines import AlwaysRace, Only, RandomSplit
from coordinator.disco.cost import DeviceEnergy
from coordinator.disco.dispatch_policy import DeviceTTFT
from coordinator.disco.policy import DiscoPolicy, DispatchPlan
from coordinator.disco.simulator import Profiles, first_token, reader_stall, simulate
from edgeweave.config import DiscoConfig

PROF = Profiles(DeviceTTFT(0.1, 0.001), 0.05, DeviceEnergy(0.01, 0.001), [0.5], 0.02, context=1000)
PRICES = {"usd_per_prompt_token": 1e-6, "usd_per_output_token": 1e-3, "usd_per_joule": 1e-4}


def _policy(**kw: object) -> DiscoPolicy:
    return DiscoPolicy(DiscoConfig(**PRICES, **kw))  # type: ignore[arg-type]


def test_the_first_token_wins_a_race_and_a_late_second_leg_may_never_start() -> None:
    assert first_token(DispatchPlan("device", "cloud"), 0.2, 0.5) == ("device", 0.2, "cloud")
    assert first_token(DispatchPlan("cloud", "device", 0.25), 0.2, 0.5) == ("device", pytest.approx(0.45), "cloud")
    assert first_token(DispatchPlan("cloud", "device", 0.6), 0.2, 0.5) == (
        "cloud",
        0.5,
        None,
    )  # the device never started
    assert first_token(DispatchPlan("cloud"), 0.2, 0.5) == ("cloud", 0.5, None)


def test_single_endpoints_and_races_are_timed_and_charged_per_leg() -> None:
    cloud = simulate(_policy(migrate=False), Only("cloud"), [(100, 5)], PROF)[0]
    assert cloud.ttft_s == 0.5 and cloud.gaps_s == [0.02] * 4
    assert cloud.cost_usd == pytest.approx(100e-6 + 5e-3)
    policy = _policy(migrate=False)
    raced = simulate(policy, AlwaysRace(), [(100, 5)], PROF)[0]  # the device: 0.1 + 0.1 s
    assert raced.ttft_s == pytest.approx(0.2) and raced.gaps_s == [0.05] * 4
    device = (100 * 0.001 + 5 * 0.01) * 1e-4
    assert raced.cost_usd == pytest.approx(device + 100e-6)  # the cloud lost, after prefilling the prompt
    assert policy.spend.budget_used("cloud") == 1.0 and policy.spend.budget_used("device") == 1.0
    split = _policy(migrate=False)
    simulate(split, RandomSplit("cloud", 0.3), [(100, 5)] * 1000, PROF)
    assert split.spend.budget_used("cloud") == pytest.approx(0.3, abs=0.05)


def test_a_dear_cloud_answer_moves_to_the_device_once_lengths_are_known() -> None:
    policy = _policy(device_prefill_tok_s=1000.0)  # the policy's device TTFT prior: 1 ms a token
    served = simulate(policy, Only("cloud"), [(100, 50)] * 11, PROF)
    assert not any(s.migrated for s in served[:10])  # fewer than ten finished answers: no estimate
    s = served[10]
    # at 4 tokens the buffer (4 - 4.5 * 3 * 0.02 = 3.73) covers the estimated 0.104 s move; the cloud
    # stops there, the device takes 0.1 + 0.104 s (the cloud would have made 10 tokens meanwhile)
    assert s.migrated and s.delayed_tokens == 10
    assert s.gaps_s[:3] == [0.02] * 3 and s.gaps_s[3] == pytest.approx(0.204) and s.gaps_s[4:] == [0.05] * 45
    assert s.reader_stall_s == 0.0  # both tiers outpace a reader at 4.5 tokens/s
    cloud = 100e-6 + 4e-3
    device = (104 * 0.001 + 46 * 0.01) * 1e-4
    assert s.cost_usd == pytest.approx(cloud + device)
    assert s.cost_usd < 0.1 * served[9].cost_usd
    crawl = replace(PROF, device_tbt_s=0.5)  # 2 tokens/s: the reader would catch up with the device
    assert not any(
        a.migrated for a in simulate(_policy(device_prefill_tok_s=1000.0), Only("cloud"), [(100, 50)] * 11, crawl)
    )


def test_a_reader_stalls_only_when_tokens_come_later_than_it_reads() -> None:
    assert reader_stall(0.5, [0.1, 0.1], reading_tok_s=5.0) == 0.0  # 10 tokens/s outpace 5
    # first token read at 0.0; the next delivered at 0.2 (due 0.2), then at 1.2 (due 0.4: 0.8 s of
    # waiting), then at 1.3 (due 1.4: on time)
    assert reader_stall(0.0, [0.2, 1.0, 0.1], reading_tok_s=5.0) == pytest.approx(0.8)


def test_a_warmed_device_takes_a_long_prompt_over_with_a_short_gap() -> None:
    """A 1,000-token prompt: moved without a warm, the device prefills it all (about 1.1 s, some 55 cloud
    tokens); warmed from token 4 in rounds (1.1 s, then the ~55 tokens sent meanwhile, ...), the move
    waits until a round would gain under a token and then prefills only a few."""
    reqs = [(1000, 400)] * 11
    LONG = replace(PROF, context=2000)  # noqa: N806
    cold, warm = (DiscoPolicy(DiscoConfig(**PRICES, device_prefill_tok_s=1000.0), w) for w in (False, True))  # type: ignore[arg-type]
    c = simulate(cold, Only("cloud"), reqs, LONG)[10]
    w = simulate(warm, Only("cloud"), reqs, LONG)[10]
    assert c.migrated and not c.warmed and c.delayed_tokens >= 50
    assert w.migrated and w.warmed and 1 <= w.delayed_tokens <= 8
    assert len(w.gaps_s) == len(c.gaps_s) == 399 and w.reader_stall_s == 0.0  # every token once, none waited for
    moved_at = max(range(399), key=lambda i: w.gaps_s[i])
    assert moved_at > 50  # the warm's first round (1.1 s, 55 tokens) had to finish first
    # every leg and warm round went through the policy's ledger
    assert sum(warm.spend.usd.values()) == pytest.approx(sum(a.cost_usd for a in simulate(
        DiscoPolicy(DiscoConfig(**PRICES, device_prefill_tok_s=1000.0)), Only("cloud"), reqs, LONG)))  # type: ignore[arg-type]  # fmt: skip
