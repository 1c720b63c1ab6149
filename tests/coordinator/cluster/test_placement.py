"""Least-loaded placement: edge first, least utilised first, faster devices break ties."""

from __future__ import annotations

from coordinator.cluster.placement import Candidate, LeastLoaded


def test_edge_first_then_cloud_then_full_devices() -> None:
    c = [
        Candidate("cloud:gpu", "cloud", in_flight=0, capacity=None),
        Candidate("device:full", "device", in_flight=3, capacity=3, decode_tok_s=900),
        Candidate("device:busy", "device", in_flight=2, capacity=3, decode_tok_s=500),
        Candidate("device:idle", "device", in_flight=0, capacity=3, decode_tok_s=100),
    ]
    assert LeastLoaded().rank(c) == ["device:idle", "device:busy", "cloud:gpu", "device:full"]


def test_utilisation_not_raw_queue_length_and_speed_breaks_ties() -> None:
    c = [
        Candidate("device:small", "device", in_flight=1, capacity=2, decode_tok_s=300),  # 50 %
        Candidate("device:big", "device", in_flight=2, capacity=8, decode_tok_s=300),  # 25 %
        Candidate("device:fast", "device", in_flight=0, capacity=2, decode_tok_s=4000),
        Candidate("device:slow", "device", in_flight=0, capacity=2, decode_tok_s=400),
    ]
    assert LeastLoaded().rank(c) == ["device:fast", "device:slow", "device:big", "device:small"]


def test_pure_and_deterministic() -> None:
    c = [Candidate(f"device:d{i}", "device", in_flight=0, capacity=1) for i in range(5)]
    assert LeastLoaded().rank(c) == LeastLoaded().rank(list(reversed(c))) == [f"device:d{i}" for i in range(5)]
    assert LeastLoaded().rank([]) == []
