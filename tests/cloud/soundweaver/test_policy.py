"""SoundWeaver's pure policy pieces: the cache manager's decay, eviction, duplicates and refinement;
the selector's gates and alignment; the gater learning online; NIRVANA's depth choice and LCBFU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cloud.soundweaver.baselines import Nirvana, NoCache
from cloud.soundweaver.cache import CacheEntry, CacheManager, CacheOptions
from cloud.soundweaver.gater import GateContext, QualityBar, SkipGater
from cloud.soundweaver.policy import Outcome, SoundJob, SoundWeaver
from cloud.soundweaver.selector import SelectorOptions, align, is_stationary, select
from edgeweave.audio.corpus import SoundSpec, render
from edgeweave.audio.mel import N_MELS, frames_for, to_mel


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def entry(emb: np.ndarray, duration: float = 3.0, quality: float = 0.8, full: bool = True) -> CacheEntry:
    mel = torch.zeros(N_MELS, frames_for(duration))
    return CacheEntry(-1, "p", emb, duration, mel, quality, full)


def test_importance_decays_by_half_life_and_grows_on_use() -> None:
    c = CacheManager(CacheOptions(half_life_s=10.0))
    k = c.admit(entry(unit(1, 0, 0)), now=0.0)
    assert k is not None
    assert c.importance(c.entries[k], 10.0) == pytest.approx(0.5)  # exact: exp(-ln 2)
    c.touch(k, 10.0)
    assert c.importance(c.entries[k], 10.0) == pytest.approx(1.5)
    assert c.entries[k].uses == 1


def test_quality_aware_eviction_drops_the_poor_popular_entry_before_the_good_one() -> None:
    c = CacheManager(CacheOptions(capacity=2, half_life_s=1e9))
    poor = c.admit(entry(unit(1, 0, 0), quality=0.1), 0.0)
    good = c.admit(entry(unit(0, 1, 0), quality=0.9), 0.0)
    assert poor is not None and good is not None
    c.touch(poor, 1.0)  # importance 2 x quality 0.1 = 0.2 < 1 x 0.9
    c.admit(entry(unit(0, 0, 1)), 2.0)
    assert poor not in c.entries and good in c.entries and c.evictions == 1


def test_lru_eviction_drops_the_least_recently_used() -> None:
    c = CacheManager(CacheOptions(capacity=2, lru=True))
    a = c.admit(entry(unit(1, 0, 0), quality=0.9), 0.0)
    b = c.admit(entry(unit(0, 1, 0), quality=0.1), 1.0)
    assert a is not None and b is not None
    c.touch(b, 2.0)
    c.admit(entry(unit(0, 0, 1)), 3.0)
    assert a not in c.entries and b in c.entries


def test_a_near_duplicate_replaces_an_entry_only_when_better() -> None:
    c = CacheManager()
    k = c.admit(entry(unit(1, 0, 0), 3.0, quality=0.5), 0.0)
    assert c.admit(entry(unit(1, 0.01, 0), 3.1, quality=0.4), 1.0) is None  # worse: refused
    better = c.admit(entry(unit(1, 0.01, 0), 3.1, quality=0.7), 1.0)
    assert better is not None and k not in c.entries and len(c) == 1
    assert c.admit(entry(unit(1, 0, 0), 6.0, quality=0.1), 1.0) is not None  # twice as long: not a duplicate


def test_refinement_names_the_popular_poor_warm_started_entry() -> None:
    c = CacheManager(CacheOptions(refine_below=0.5, refine_min_importance=1.5, half_life_s=1e9))
    poor = c.admit(entry(unit(1, 0, 0), quality=0.2, full=False), 0.0)
    c.admit(entry(unit(0, 1, 0), quality=0.9, full=False), 0.0)
    assert poor is not None
    assert c.refinement(0.0) is None  # not popular yet
    c.touch(poor, 1.0)
    assert c.refinement(1.0) is c.entries[poor]
    assert CacheManager(CacheOptions(lru=True)).refinement(0.0) is None


def test_selector_gates_on_meaning_and_length_and_prefers_the_right_length() -> None:
    c = CacheManager()
    c.admit(entry(unit(1, 0.1, 0), 3.0), 0.0)
    long = c.admit(entry(unit(1, 0.0, 0), 9.0), 0.0)
    opts = SelectorOptions(min_similarity=0.9, max_duration_ratio=2.0, duration_weight=0.1)
    ref = select(c, unit(1, 0, 0), 3.0, opts)
    assert ref is not None and ref.entry.duration == 3.0  # a little less similar, but no stretch
    assert select(c, unit(0, 1, 0), 3.0, opts) is None  # semantic gate
    assert select(c, unit(1, 0, 0), 1.0, opts) is None  # duration gate: 3 s and 9 s are both > 2x
    ref = select(c, unit(1, 0, 0), 8.0, opts)
    assert ref is not None and ref.entry.key == long


def test_align_loops_stationary_sounds_and_stretches_the_rest() -> None:
    rain = to_mel(render(SoundSpec("rain", duration=2.0), 1), frames_for(2.0))
    chime = to_mel(render(SoundSpec("chime", notes=3, duration=2.0), 1), frames_for(2.0))
    assert is_stationary(rain) and not is_stationary(chime)
    looped = align(rain, 2.0, 5.0)
    assert looped.shape == (N_MELS, frames_for(5.0))
    n = frames_for(2.0)
    assert torch.equal(looped[:, n : 2 * n], rain)  # a loop repeats the clip exactly
    stretched = align(chime, 2.0, 4.0)
    assert stretched.shape == (N_MELS, frames_for(4.0))
    # the chime's onset envelope lands at twice the time: its loudest frame moves from i to about 2i
    i, j = int(chime.mean(0).argmax()), int(stretched.mean(0).argmax())
    assert abs(j - 2 * i) <= 2
    assert align(chime, 2.0, 1.0).shape == (N_MELS, frames_for(1.0))


def test_the_gater_learns_to_skip_deep_only_where_it_is_free() -> None:
    g = SkipGater()
    bar = QualityBar(0.8)
    close, far = GateContext(0.98, 1.0, 0.8, 0.0), GateContext(0.72, 1.8, 0.8, 0.0)

    def quality(ctx: GateContext, skip: float) -> float:  # deep skips lose quality only from a far reference
        return 0.8 if ctx is close else 0.8 - 0.8 * skip**2

    for _ in range(200):
        for ctx in (close, far):
            arm = g.choose(ctx)
            g.update(ctx, arm, g.reward(arm, quality(ctx, g.options.arms[arm]), bar))
    assert g.options.arms[g.choose(close)] >= 0.85
    assert g.options.arms[g.choose(far)] <= 0.3


def test_soundweaver_plans_a_warm_start_from_its_cache_and_admits_results() -> None:
    sw = SoundWeaver()
    job = SoundJob("a chime", unit(1, 0, 0), 3.0, 50, 1)
    first = sw.plan(job, 0.0, 0.0)
    assert not first.hit and first.start == 0
    sw.observe(job, first, Outcome(torch.zeros(N_MELS, frames_for(3.0)), 0.8, 50), 0.0)
    assert sw.cache_entries() == 1 and sw.bar.n == 1
    again = sw.plan(SoundJob("a chime sound", unit(1, 0.05, 0), 2.5, 50, 2), 1.0, 0.0)
    assert again.hit and 0 < again.start < 50 and again.init is not None
    assert again.init.shape == (N_MELS, frames_for(2.5))
    assert again.reference_prompt == "a chime"


def test_nirvana_picks_the_depth_by_similarity_and_evicts_by_lcbfu() -> None:
    n = Nirvana(capacity=2)
    keep = n.plan(SoundJob("a", unit(1, 0, 0), 3.0, 50, 0), 0.0, 0.0).keep
    assert keep == (5, 10, 15, 20, 25)
    states = {k: torch.full((N_MELS, frames_for(3.0)), float(k)) for k in keep}
    for i, emb in enumerate((unit(1, 0, 0), unit(0, 1, 0))):
        job = SoundJob(str(i), emb, 3.0, 50, 0)
        n.observe(job, n.plan(job, 0.0, 0.0), Outcome(torch.zeros(1), 0.8, 50, states), float(i))
    hit = n.plan(SoundJob("x", unit(1, 0.05, 0), 3.0, 50, 0), 5.0, 0.0)
    assert hit.start == 25 and hit.state is not None and float(hit.state[0, 0]) == 25.0  # cos 0.9988 -> K = 25
    near = n.plan(SoundJob("y", unit(1, 0.5, 0), 2.0, 50, 0), 6.0, 0.0)  # cos 0.894 -> K = 20
    assert near.start == 20 and near.state is not None and near.state.shape[-1] == frames_for(2.0)
    assert n.plan(SoundJob("z", unit(1, 0, 0), 9.0, 50, 0), 7.0, 0.0).start == 0  # longer than any latent
    # entry 0 saved 45 steps, entry 1 none: a third full generation evicts entry 1
    job = SoundJob("w", unit(0, 0, 1), 3.0, 50, 0)
    n.observe(job, n.plan(job, 8.0, 0.0), Outcome(torch.zeros(1), 0.8, 50, states), 8.0)
    assert sorted(e.prompt for e in n.entries.values()) == ["0", "w"]


def test_no_cache_plans_from_noise_at_its_own_steps_and_solver() -> None:
    plan = NoCache("fewer", 12, "dpm").plan(SoundJob("a", unit(1, 0), 3.0, 50, 0), 0.0, 0.0)
    assert (plan.steps, plan.solver, plan.start, plan.hit) == (12, "dpm", 0, False)


def test_the_reward_is_time_saved_minus_quality_lost_against_the_full_step_bar() -> None:
    g, bar = SkipGater(), QualityBar()
    for score in (0.7, 0.9):
        bar.observe(score)
    assert bar.mean == pytest.approx(0.8)
    deep = g.options.arms.index(0.9)
    assert g.reward(deep, 0.85, bar) == pytest.approx(0.9)  # better than the bar: nothing lost
    assert g.reward(deep, 0.6, bar) == pytest.approx(0.9 - 3.0 * 0.25)  # a quarter of the bar lost


def test_an_ignored_reference_is_not_counted_as_used() -> None:
    sw = SoundWeaver()
    job = SoundJob("a chime", unit(1, 0, 0), 3.0, 50, 1)
    sw.observe(job, sw.plan(job, 0.0, 0.0), Outcome(torch.zeros(N_MELS, frames_for(3.0)), 0.8, 50), 0.0)
    (entry,) = sw.cache.entries.values()
    sw.gater.choose = lambda ctx: 0  # type: ignore[method-assign]  # the gater says: do not skip
    plan = sw.plan(SoundJob("a chime", unit(1, 0, 0), 3.0, 50, 2), 1.0, 0.0)
    assert not plan.hit and plan.start == 0 and plan.arm == 0 and entry.uses == 0


def test_nirvana_resumes_only_a_latent_of_the_same_schedule() -> None:
    n = Nirvana()
    job = SoundJob("a", unit(1, 0, 0), 3.0, 50, 0)
    keep = n.plan(job, 0.0, 0.0).keep
    states = {k: torch.zeros(N_MELS, frames_for(3.0)) for k in keep}
    n.observe(job, n.plan(job, 0.0, 0.0), Outcome(torch.zeros(1), 0.8, 50, states), 0.0)
    assert n.plan(SoundJob("a", unit(1, 0, 0), 3.0, 50, 1), 1.0, 0.0).hit
    assert not n.plan(SoundJob("a", unit(1, 0, 0), 3.0, 8, 1), 1.0, 0.0).hit  # another step count
    assert not n.plan(SoundJob("a", unit(1, 0, 0), 3.0, 50, 1, "dpm"), 1.0, 0.0).hit  # another solver
