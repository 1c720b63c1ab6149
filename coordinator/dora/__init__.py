"""Dora: QoE-aware hybrid (data x pipeline) parallelism across heterogeneous edge devices."""
