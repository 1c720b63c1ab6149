"""The rank-aware nano-batch split and AIMD on the nano-batch count (pure)."""

from __future__ import annotations

import pytest

from cloud.tlora.nano import NanoBatchAimd, lora_cost_factor, split
from edgeweave.models.config import PRESETS
from edgeweave.models.lora import TARGETS, LoraConfig, module_shape

CFG = PRESETS["weave-home-device"].config


def test_cost_factor_is_the_linear_flops_ratio_and_grows_with_rank() -> None:
    lora = LoraConfig(rank=8, alpha=16.0, target_modules=("q_proj", "v_proj"))
    base = sum(i * o for i, o in (module_shape(CFG, t) for t in TARGETS))
    q_in, q_out = module_shape(CFG, "q_proj")
    v_in, v_out = module_shape(CFG, "v_proj")
    assert lora_cost_factor(CFG, lora) == pytest.approx(1 + 8 * (q_in + q_out + v_in + v_out) / base)
    costs = [lora_cost_factor(CFG, LoraConfig(rank=r, alpha=16.0)) for r in (4, 16, 64)]
    assert 1 < costs[0] < costs[1] < costs[2]


def test_split_keeps_whole_samples_and_balances_cost() -> None:
    costs = [9.0, 1.0, 1.0, 4.0, 4.0, 3.0, 2.0, 2.0]  # total 26
    parts = split(costs, 3)
    assert sorted(i for p in parts for i in p) == list(range(8))  # every sample once, none cut
    assert all(list(p) == sorted(p) for p in parts)  # job order kept inside a nano-batch
    loads = sorted(sum(costs[i] for i in p) for p in parts)
    assert loads == [8.0, 9.0, 9.0]  # LPT: 9 | 4+3+1+1 | 4+2+2
    assert split(costs, 3) == parts  # deterministic


def test_split_is_rank_aware() -> None:
    # one 10-token sample of a rank-64 all-modules job, four 5-token samples of a rank-4 job: by
    # tokens alone the long sample would share a nano-batch with a short one (10+5 | 5+5+5); by
    # LoRA-aware cost (x1.73 against x1.01) it is a nano-batch of its own
    heavy = lora_cost_factor(CFG, LoraConfig(rank=64, alpha=16.0, target_modules=TARGETS))
    light = lora_cost_factor(CFG, LoraConfig(rank=4, alpha=16.0))
    assert split([10.0, 5.0, 5.0, 5.0, 5.0], 2) == ((0, 3), (1, 2, 4))
    assert split([10 * heavy] + [5 * light] * 4, 2) == ((0,), (1, 2, 3, 4))


def test_split_edges() -> None:
    assert split([1.0, 2.0], 5) == ((0,), (1,))  # never an empty nano-batch
    assert split([], 3) == ()
    assert split([3.0, 1.0, 2.0], 1) == ((0, 1, 2),)
    with pytest.raises(ValueError, match="at least 1"):
        split([1.0], 0)
    with pytest.raises(ValueError, match="non-negative"):
        split([1.0, -2.0], 2)


def test_aimd_adds_when_faster_by_tau_and_halves_otherwise() -> None:
    aimd = NanoBatchAimd(n=1, tau=0.1)
    assert aimd.observe(1.0) == 5  # first observation: nothing to compare, probe upward
    assert aimd.observe(0.85) == 9  # 15% faster >= tau
    assert aimd.observe(0.80) == 4  # 6% faster < tau: halve
    assert aimd.observe(0.80) == 2  # not faster
    assert aimd.observe(0.90) == 1
    assert aimd.observe(0.90) == 1  # floor at 1
    assert aimd.observe(0.5) == 5


def test_aimd_compares_time_per_unit_of_work_and_caps() -> None:
    aimd = NanoBatchAimd(n=1, tau=0.05, max_n=6)
    aimd.observe(1.0, work=10)
    assert aimd.observe(1.5, work=20) == 6  # slower step but 25% less time per sample; capped
    assert aimd.observe(2.0, work=20) == 3


@pytest.mark.parametrize("kw", [{"n": 0}, {"n": 70}, {"tau": 1.0}, {"tau": -0.1}, {"increase": 0}])
def test_aimd_bad_settings_raise(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="NanoBatchAimd"):
        NanoBatchAimd(**kw)  # type: ignore[arg-type]


def test_aimd_bad_observations_raise() -> None:
    aimd = NanoBatchAimd()
    for seconds, work in ((0.0, 1.0), (float("nan"), 1.0), (1.0, 0.0)):
        with pytest.raises(ValueError, match="positive"):
            aimd.observe(seconds, work)
