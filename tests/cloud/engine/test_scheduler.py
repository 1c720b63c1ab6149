"""The pure step scheduler with the FCFS policy."""

from __future__ import annotations

from cloud.engine.scheduler import FCFS, Budget, SeqView, schedule


def view(i: str, t: float, state: str, ctx: int, computed: int = 0, held: int = 0) -> SeqView:
    return SeqView(i, t, state, ctx, computed, 0, 64, held, held)  # type: ignore[arg-type]


def test_fcfs_fills_the_token_budget_in_arrival_order_with_chunks() -> None:
    seqs = [view("late", 2.0, "waiting", 40), view("run", 0.0, "running", 31, 30, 2), view("new", 1.0, "waiting", 50)]
    plan = schedule(FCFS(), seqs, Budget(max_tokens=32, max_seqs=8, free_blocks=100, block_size=16), now=3.0)
    assert plan.run == [("run", 1), ("new", 31)]  # the decode, then a 31-token chunk; "late" waits
    assert plan.preempt == []


def test_memory_pressure_preempts_the_lowest_ranked_running_sequence() -> None:
    seqs = [view("old", 0.0, "running", 33, 32, 2), view("young", 1.0, "running", 17, 16, 1)]
    plan = schedule(FCFS(), seqs, Budget(max_tokens=64, max_seqs=8, free_blocks=0, block_size=16), now=2.0)
    assert plan.preempt == ["young"] and plan.run == [("old", 1)]


def test_a_prefill_takes_the_blocks_that_fit_and_nothing_overtakes_it() -> None:
    seqs = [view("a", 0.0, "waiting", 100), view("b", 1.0, "waiting", 5)]
    plan = schedule(FCFS(), seqs, Budget(max_tokens=512, max_seqs=8, free_blocks=2, block_size=16), now=2.0)
    assert plan.run == [("a", 32)]
    plan = schedule(FCFS(), seqs, Budget(max_tokens=512, max_seqs=8, free_blocks=0, block_size=16), now=2.0)
    assert plan.run == [] and plan.preempt == []


def test_sequence_cap() -> None:
    seqs = [view(str(i), float(i), "running", 10, 9, 1) for i in range(5)]
    plan = schedule(FCFS(), seqs, Budget(max_tokens=64, max_seqs=3, free_blocks=10, block_size=16), now=9.0)
    assert [i for i, _ in plan.run] == ["0", "1", "2"]


class _NeverPreempt(FCFS):
    def may_preempt(self, victim: SeqView, for_seq: SeqView, now: float) -> bool:
        return False


def test_a_refused_preemption_leaves_the_newcomer_waiting_and_the_running_decoding() -> None:
    seqs = [view("new", 0.0, "waiting", 40), view("run", 1.0, "running", 21, 20, 2), view("late", 2.0, "waiting", 5)]
    plan = schedule(_NeverPreempt(), seqs, Budget(max_tokens=512, max_seqs=8, free_blocks=0, block_size=16), now=3.0)
    assert plan.run == [("run", 1)]  # "new" cannot fit, "late" may not overtake it, "run" goes on
    assert plan.preempt == []
