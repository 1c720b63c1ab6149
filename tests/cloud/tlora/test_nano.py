"""The rank-aware nano-batch split and AIMD on the nano-batch count (pure)."""

from __future__ import annotations

import itertools
import random

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


def brute_force_best(lengths: list[int], factors: list[float], n: int) -> float:
    """The least possible costliest nano-batch over every split of the length-sorted samples into n runs."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    best = float("inf")
    for cuts in itertools.combinations(range(1, len(order)), n - 1):
        bounds = (0, *cuts, len(order))
        runs = [order[a:b] for a, b in itertools.pairwise(bounds)]
        best = min(best, max(max(lengths[i] for i in r) * sum(factors[i] for i in r) for r in runs))
    return best


def padded_cost(parts: tuple[tuple[int, ...], ...], lengths: list[int], factors: list[float]) -> float:
    return max(max(lengths[i] for i in p) * sum(factors[i] for i in p) for p in parts)


def test_split_keeps_whole_samples_and_minimises_the_costliest_nano_batch() -> None:
    rng = random.Random(0)
    for _ in range(20):
        size = rng.randint(1, 9)
        lengths = [rng.randint(5, 120) for _ in range(size)]
        factors = [rng.choice((1.01, 1.1, 1.7)) for _ in range(size)]
        n = rng.randint(1, 5)
        parts = split(lengths, factors, n)
        assert len(parts) == min(n, size)
        assert sorted(i for p in parts for i in p) == list(range(size))  # every sample once, none cut
        assert all(p and list(p) == sorted(p) for p in parts)  # job order kept inside a nano-batch
        assert padded_cost(parts, lengths, factors) == pytest.approx(brute_force_best(lengths, factors, min(n, size)))
    assert split(lengths, factors, 3) == split(lengths, factors, 3)  # deterministic


def test_split_buckets_by_length() -> None:
    # one mixed batch pads all six to 102 tokens; two nano-batches pad the short ones to 12 only
    assert split([10, 100, 11, 101, 12, 102], [1.0] * 6, 2) == ((0, 2, 4), (1, 3, 5))


def test_split_is_rank_aware() -> None:
    # four equal-length samples, the first of a rank-64 all-modules job: by tokens alone two
    # and two; by LoRA-aware cost the heavy sample's nano-batch takes fewer samples
    heavy = lora_cost_factor(CFG, LoraConfig(rank=64, alpha=16.0, target_modules=TARGETS))
    light = lora_cost_factor(CFG, LoraConfig(rank=4, alpha=16.0))
    assert split([10] * 4, [1.0] * 4, 2) == ((0, 1), (2, 3))
    assert split([10] * 5, [heavy] + [light] * 4, 2) == ((0, 1), (2, 3, 4))
    assert split([10] * 4, [3.0, 1.0, 1.0, 1.0], 2) == ((0,), (1, 2, 3))


def test_split_edges() -> None:
    assert split([1, 2], [1.0, 1.0], 5) == ((0,), (1,))  # never an empty nano-batch
    assert split([], [], 3) == ()
    assert split([3, 1, 2], [1.0] * 3, 1) == ((0, 1, 2),)
    with pytest.raises(ValueError, match="at least 1"):
        split([1], [1.0], 0)
    with pytest.raises(ValueError, match="positive"):
        split([1, 0], [1.0, 1.0], 2)
    with pytest.raises(ValueError, match="positive"):
        split([1, 2], [1.0, float("nan")], 2)
    with pytest.raises(ValueError, match="lengths for"):
        split([1, 2], [1.0], 2)


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
