"""Invariants of the PackInfer packing planner (property tests)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.packing import DriftMonitor, PackingPlan, SeqWork, capacity_for, plan_groups


@st.composite
def batches(draw: st.DrawFn) -> list[SeqWork]:
    works = []
    for _ in range(draw(st.integers(1, 24))):
        if draw(st.booleans()):  # decode, perhaps sharing a prefix
            kv = draw(st.integers(1, 3000))
            pre = draw(st.sampled_from([None, "a", "b"]))
            plen = draw(st.integers(1, kv - 1)) if pre and kv > 1 else 0
            plen = {"a": min(kv - 1, 37), "b": min(kv - 1, 300)}.get(pre or "", 0) if plen else 0
            works.append(SeqWork(1, kv, pre if plen else None, plen))
        else:  # a prefill chunk after kv - q cached keys
            kv = draw(st.integers(1, 600))
            works.append(SeqWork(draw(st.integers(1, min(kv, 80))), kv))
    return works


def coverage(plan: PackingPlan, works: list[SeqWork]) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """For every query token, the key ranges walked for it (clipped to its causal limit)."""
    seen: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for g in plan.groups:
        for sp in g.spans:
            for i in range(sp.q_lo, sp.q_hi):
                row = sp.row + i - sp.q_lo
                ranges = seen.setdefault((sp.seq, i), [])
                for s in g.segments:
                    if s.row_lo <= row < s.row_hi:
                        if s.seq != sp.seq:  # a shared prefix: only the family's common keys
                            w, o = works[sp.seq], works[s.seq]
                            assert w.prefix == o.prefix and s.k_hi <= w.prefix_len
                        hi = min(s.k_hi, works[sp.seq].pos(i) + 1)
                        if hi > s.k_lo:
                            ranges.append((s.k_lo, hi))
    return seen


@settings(max_examples=150, deadline=None)
@given(batches(), st.integers(16, 4096), st.sampled_from([1, 4, 8, 16]), st.sampled_from([1, 32]))
def test_every_query_key_pair_is_covered_exactly_once(
    works: list[SeqWork], capacity: int, slots: int, align: int
) -> None:
    plan = plan_groups(works, capacity, slots, align)
    seen = coverage(plan, works)
    assert set(seen) == {(b, i) for b, w in enumerate(works) for i in range(w.q_len)}
    for (b, i), ranges in seen.items():
        ends = [0]
        for lo, hi in sorted(ranges):  # the ranges tile [0, pos] without gap or overlap
            assert lo == ends[-1], (b, i, sorted(ranges))
            ends.append(hi)
        assert ends[-1] == works[b].pos(i) + 1, (b, i)


@settings(max_examples=150, deadline=None)
@given(batches(), st.integers(16, 4096), st.sampled_from([1, 4, 8, 16]), st.sampled_from([1, 16, 64]))
def test_capacity_slots_and_tile_alignment_are_respected(
    works: list[SeqWork], capacity: int, slots: int, align: int
) -> None:
    plan = plan_groups(works, capacity, slots, align)
    assert coverage(plan, works)  # still a partition (checked fully above without alignment)
    for g in plan.groups:
        assert g.load <= max(capacity, align)
        for seg in g.segments:  # a split piece starts on a tile boundary of its range
            assert seg.k_lo % align == 0 or seg.k_lo == works[seg.seq].prefix_len
        assert 1 <= g.rows <= slots
        assert sorted(r for s in g.spans for r in range(s.row, s.row + s.rows)) == list(range(g.rows))


def test_prefix_family_shares_one_group_and_walks_the_prefix_once() -> None:
    works = [SeqWork(1, 500 + i, "sys", 480) for i in range(4)] + [SeqWork(1, 900), SeqWork(1, 30)]
    plan = plan_groups(works, capacity=1000, slots=8)
    (fam,) = [g for g in plan.groups if {s.seq for s in g.spans} >= {0, 1, 2, 3}]
    prefix = [s for s in fam.segments if s.k_lo == 0 and s.row_hi - s.row_lo == 4]
    assert len(prefix) == 1 and prefix[0].keys == 480
    assert sum(s.keys for s in fam.segments if s.seq < 4) == 480 + sum(20 + i for i in range(4))


def test_long_request_is_split_and_groups_are_balanced() -> None:
    works = [SeqWork(1, 8000)] + [SeqWork(1, 100) for _ in range(20)]
    plan = plan_groups(works, capacity=1000, slots=32)
    assert len(plan.split_tokens()) == 1
    loads = plan.loads
    assert max(loads) <= 1000 and sum(loads) == 8000 + 2000
    assert max(loads) - min(loads) <= 200  # longest-first, least-loaded


def test_short_prefills_are_packed_into_one_group() -> None:
    works = [SeqWork(3, 3), SeqWork(4, 4), SeqWork(5, 5)]
    plan = plan_groups(works, capacity=64, slots=16)
    assert len(plan.groups) == 1 and plan.groups[0].rows == 12


def test_drift_monitor_triggers_at_half_capacity() -> None:
    # group A grows 4 keys per step (4 decode rows), group B none (a finished prefill chunk)
    works = [SeqWork(1, 10) for _ in range(4)] + [SeqWork(16, 40)]
    plan = plan_groups(works, capacity=200, slots=16)
    mon = DriftMonitor(plan, works)
    growth = sorted(mon.growth)
    assert growth[0] == 0 and growth[-1] == 4
    assert sorted(plan.loads) == [40, 40]
    fired = [mon.step() for _ in range(25)]
    assert fired == [False] * 24 + [True]  # 25 steps * 4 keys of spread = C / 2


def test_capacity_for_spreads_keys() -> None:
    works = [SeqWork(1, 1000) for _ in range(10)]
    assert capacity_for(works, target_groups=20, slots=8) == 500
