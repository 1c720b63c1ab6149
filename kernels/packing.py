"""PackInfer's packing planner: variable-length attention work into balanced groups.

Pure and synchronous (no tensors): the engine, the kernels' table builder and
the benchmarks all call the same :func:`plan_groups`.

One *group* is what one kernel program (per KV head) computes: up to
``slots`` query tokens (its rows) and a list of key *segments*, each visible
to a contiguous range of the group's rows.  A program's time is proportional
to the keys it walks, so a group's **load** is the sum of its segments'
lengths, and the capacity ``C`` bounds it.  The planner

- packs short sequences' query tokens together into one group (one program
  instead of one mostly empty tile each);
- puts decode sequences that share a prefix into the same group, so the prefix
  is one segment walked once for all of them (then each suffix);
- splits a sequence whose keys exceed ``C`` into key ranges placed in several
  groups; the kernel writes each piece's partial output and log-sum-exp and a
  merge combines them exactly;
- places units longest-first into the least-loaded group that has room.

:class:`DriftMonitor` carries a plan across decode steps (each step every
running sequence gains one key) and says when to regroup: when the load drift
``t * dL`` reaches ``C / 2`` (``t`` steps since the plan, ``dL`` the spread of
per-step load growth between groups), or when a group outgrows ``C``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeqWork:
    """One sequence's attention this step: its last ``q_len`` keys are its queries."""

    q_len: int
    kv_len: int
    prefix: Hashable | None = None  # decode sequences with equal keys share their first prefix_len keys
    prefix_len: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.q_len <= self.kv_len:
            raise ValueError(f"need 1 <= q_len <= kv_len, got q_len={self.q_len} kv_len={self.kv_len}")
        if not 0 <= self.prefix_len < self.kv_len:
            raise ValueError(f"prefix_len={self.prefix_len} must be below kv_len={self.kv_len}")

    def pos(self, i: int) -> int:
        """Position (key index) of query token ``i``."""
        return self.kv_len - self.q_len + i


@dataclass(frozen=True)
class Span:
    """Query tokens ``[q_lo, q_hi)`` of sequence ``seq`` at the group's rows from ``row``."""

    seq: int
    q_lo: int
    q_hi: int
    row: int = 0

    @property
    def rows(self) -> int:
        return self.q_hi - self.q_lo


@dataclass(frozen=True)
class Segment:
    """Keys ``[k_lo, k_hi)`` of sequence ``seq`` (its key space), visible to rows ``[row_lo, row_hi)``."""

    seq: int
    k_lo: int
    k_hi: int
    row_lo: int = 0
    row_hi: int = 0

    @property
    def keys(self) -> int:
        return self.k_hi - self.k_lo


@dataclass
class Group:
    spans: list[Span] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.spans)

    @property
    def load(self) -> int:
        return sum(s.keys for s in self.segments)


@dataclass(frozen=True)
class PackingPlan:
    groups: list[Group]
    capacity: int
    slots: int

    @property
    def loads(self) -> list[int]:
        return [g.load for g in self.groups]

    def split_tokens(self) -> set[tuple[int, int]]:
        """(seq, query index) pairs whose output is spread over several groups."""
        seen: dict[tuple[int, int], int] = {}
        for g in self.groups:
            for sp in g.spans:
                for i in range(sp.q_lo, sp.q_hi):
                    seen[(sp.seq, i)] = seen.get((sp.seq, i), 0) + 1
        return {k for k, n in seen.items() if n > 1}


@dataclass
class _Unit:
    """Rows and segments that must stay in one group (unit-local row numbers)."""

    spans: list[Span]
    segments: list[Segment]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.spans)

    @property
    def load(self) -> int:
        return sum(s.keys for s in self.segments)


def _causal_end(w: SeqWork, q_hi: int) -> int:
    """Keys the query tokens ``[.., q_hi)`` can see: up to and including the last one's position."""
    return w.pos(q_hi - 1) + 1


def _sequence_units(i: int, w: SeqWork, slots: int) -> list[_Unit]:
    units = []
    for lo in range(0, w.q_len, slots):
        hi = min(lo + slots, w.q_len)
        units.append(_Unit([Span(i, lo, hi)], [Segment(i, 0, _causal_end(w, hi), 0, hi - lo)]))
    return units


def _family_unit(members: list[int], works: Sequence[SeqWork], prefix_len: int) -> _Unit:
    spans = [Span(m, 0, 1, row=r) for r, m in enumerate(members)]
    segs = [Segment(members[0], 0, prefix_len, 0, len(members))]
    segs += [Segment(m, prefix_len, works[m].kv_len, r, r + 1) for r, m in enumerate(members)]
    return _Unit(spans, [s for s in segs if s.keys > 0])


def _split_keys(u: _Unit, capacity: int, align: int) -> list[_Unit]:
    """Cut a one-span unit's keys into ceil(load / C) nearly equal ranges whose
    inner bounds fall on multiples of ``align`` (the kernel's key tile)."""
    (seg,) = u.segments
    n = math.ceil(seg.keys / capacity)
    step = max(align, -(-seg.keys // n // align) * align)  # at most C: C >= align and C >= keys / n
    step = min(step, capacity // align * align)
    bounds = [*range(seg.k_lo, seg.k_hi, step), seg.k_hi]
    return [
        _Unit(u.spans, [Segment(seg.seq, a, b, seg.row_lo, seg.row_hi)])
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]


def _fit(u: _Unit, works: Sequence[SeqWork], capacity: int, align: int) -> list[_Unit]:
    if u.load <= capacity:
        return [u]
    if len(u.spans) > 1:  # a prefix family: halve it, each half keeps the prefix
        members = [s.seq for s in u.spans]
        half = len(members) // 2
        prefix_len = u.segments[0].k_hi if u.segments[0].row_hi - u.segments[0].row_lo > 1 else 0
        return [
            x
            for part in (members[:half], members[half:])
            for x in _fit(_family_unit(part, works, prefix_len), works, capacity, align)
        ]
    if len(u.segments) > 1:  # one member left of a family: its prefix and suffix are one key range
        sp = u.spans[0]
        u = _Unit(u.spans, [Segment(sp.seq, 0, works[sp.seq].kv_len, 0, 1)])
    return _split_keys(u, capacity, align)


def _units(works: Sequence[SeqWork], slots: int, capacity: int, align: int) -> list[_Unit]:
    families: dict[tuple[Hashable, int], list[int]] = {}
    units: list[_Unit] = []
    for i, w in enumerate(works):
        if w.q_len == 1 and w.prefix is not None and w.prefix_len > 0:
            families.setdefault((w.prefix, w.prefix_len), []).append(i)
        else:
            units += _sequence_units(i, w, slots)
    for (_, prefix_len), members in families.items():
        if len(members) == 1:
            units += _sequence_units(members[0], works[members[0]], slots)
            continue
        for lo in range(0, len(members), slots):
            units.append(_family_unit(members[lo : lo + slots], works, prefix_len))
    return [x for u in units for x in _fit(u, works, capacity, align)]


def plan_groups(works: Sequence[SeqWork], capacity: int, slots: int, align: int = 1) -> PackingPlan:
    """Pack ``works`` into groups of at most ``slots`` rows and at most
    ``capacity`` keys walked; split sequences are cut on multiples of ``align``
    keys (pass the kernel's key tile so no piece adds a partial tile)."""
    if capacity < 1 or slots < 1 or align < 1:
        raise ValueError(f"capacity, slots and align must be positive (got {capacity}, {slots}, {align})")
    capacity = max(capacity, align)
    units = sorted(_units(works, slots, capacity, align), key=lambda u: (-u.load, -u.rows))
    total_load = sum(u.load for u in units)
    total_rows = sum(u.rows for u in units)
    n = max(1, math.ceil(total_load / capacity), math.ceil(total_rows / slots)) if units else 0
    groups = [Group() for _ in range(n)]
    heap = [(0, g) for g in range(n)]  # (load, group index): least-loaded first
    for u in units:
        skipped = []
        while heap:
            load, g = heapq.heappop(heap)
            if groups[g].rows + u.rows <= slots and load + u.load <= capacity:
                break
            skipped.append((load, g))
        else:
            g = len(groups)
            groups.append(Group())
        _place(groups[g], u)
        for item in skipped:
            heapq.heappush(heap, item)
        heapq.heappush(heap, (groups[g].load, g))
    return PackingPlan([g for g in groups if g.spans], capacity, slots)


def _place(g: Group, u: _Unit) -> None:
    base = g.rows
    g.spans += [Span(s.seq, s.q_lo, s.q_hi, base + s.row) for s in u.spans]
    g.segments += [Segment(s.seq, s.k_lo, s.k_hi, base + s.row_lo, base + s.row_hi) for s in u.segments]


def capacity_for(works: Sequence[SeqWork], target_groups: int, slots: int, floor: int = 64) -> int:
    """A capacity that spreads the batch's keys over about ``target_groups`` programs."""
    total = sum(w.kv_len for w in works) if works else 0
    longest = max((w.kv_len for w in works), default=0)
    return max(floor, math.ceil(total / max(1, target_groups)), min(longest, slots))


def grows(seg: Segment, works: Sequence[SeqWork]) -> bool:
    """Whether a decode step appends to this segment (it ends at its sequence's last key)."""
    return works[seg.seq].q_len == 1 and seg.k_hi == works[seg.seq].kv_len


@dataclass
class DriftMonitor:
    """Tracks a decode plan's loads as every sequence gains a key per step."""

    plan: PackingPlan
    works: Sequence[SeqWork]
    steps: int = 0
    growth: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.growth = [sum(grows(s, self.works) for s in g.segments) for g in self.plan.groups]

    @property
    def drift(self) -> int:
        spread = max(self.growth) - min(self.growth) if self.growth else 0
        return self.steps * spread

    def step(self) -> bool:
        """Record one decode step; True when the plan should be rebuilt."""
        self.steps += 1
        loads = zip(self.plan.loads, self.growth, strict=True)
        over = any(load + self.steps * grow > self.plan.capacity for load, grow in loads)
        return over or 2 * self.drift >= self.plan.capacity
