"""Tempo's service-gain accounting on hand-computed cases."""

from __future__ import annotations

from cloud.tempo.gain import GainLedger, by_deadline, latency_useful, request_gain
from edgeweave.wire.slo import CompoundSLO, DeadlineSLO, LatencySLO


def test_latency_tokens_count_only_by_their_own_due_time() -> None:
    slo = LatencySLO(ttft_s=1.0, tbt_s=0.1)
    # due: 1.0, 1.1, 1.2, 1.3 after arrival at 10.0
    times = [10.9, 11.05, 11.15, 11.5]
    assert latency_useful(slo, 10.0, times) == 3  # the last one is 0.2 s late
    assert latency_useful(slo, 10.0, [11.2, 11.21, 11.22, 11.23, 11.24]) == 2  # late start; the last two catch up
    assert latency_useful(slo, 10.0, []) == 0


def test_deadline_is_all_or_nothing_and_early_adds_nothing() -> None:
    assert by_deadline(5.0, 0.0, [1.0, 2.0, 5.0]) == 3
    assert by_deadline(5.0, 0.0, [1.0, 2.0, 5.01]) == 0
    assert request_gain(DeadlineSLO(type="deadline", deadline_s=5.0), 0.0, [0.1, 0.2]) == 2


def test_ledger_judges_requests_and_whole_workflows() -> None:
    led = GainLedger()
    lat = LatencySLO(ttft_s=1.0, tbt_s=0.1)
    led.arrive(lat, 0.0)
    led.finish(lat, 0.0, [0.5, 0.6, 2.0])  # 2 of 3 useful: not met
    dl = DeadlineSLO(type="deadline", deadline_s=3.0)
    led.finish(dl, 1.0, [2.0, 3.5])  # done 2.5 s after arrival: met
    first = CompoundSLO(type="compound", workflow_id="wf", stage=0, deadline_s=10.0)
    last = CompoundSLO(type="compound", workflow_id="wf", stage=1, deadline_s=10.0, last=True)
    led.arrive(first, 100.0)
    led.finish(first, 100.0, [101.0] * 4)
    assert led.open_workflows == 1 and led.judged["compound"] == 0
    led.arrive(last, 105.0)
    led.finish(last, 105.0, [106.0, 109.5])  # 9.5 s after the workflow's first call
    assert led.gain == {"latency": 2, "deadline": 2, "compound": 6}
    assert led.tokens == {"latency": 3, "deadline": 2, "compound": 6}
    assert led.met == {"latency": 0, "deadline": 1, "compound": 1}
    late = CompoundSLO(type="compound", workflow_id="wf2", deadline_s=1.0, last=True)
    led.arrive(late, 0.0)
    led.finish(late, 0.0, [0.5, 1.5])
    assert led.gain["compound"] == 6 and led.judged["compound"] == 2 and led.open_workflows == 0
