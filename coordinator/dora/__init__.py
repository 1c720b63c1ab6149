"""Dora: QoE-aware hybrid (data x pipeline) parallelism across heterogeneous edge devices, for
training and inference (arXiv 2512.10990).

Implemented from the paper:

- the partitioner (:mod:`.partitioner`, :mod:`.planner`): from per-layer profiles measured on the
  devices (compute time per sample, bytes at each cut, weight bytes, memory; :mod:`.profiles`),
  enumerate data-parallel x pipeline plans over heterogeneous devices, predict each plan's
  latency, throughput and energy, and keep the compact Pareto set that meets the QoE (a latency
  bound, a throughput target);
- the contention-aware network scheduler (:mod:`.network`): the devices share one access point,
  and the order in which micro-batches' transfers take it decides how much communication
  overlaps computation;
- the runtime adapter (:mod:`.adapter`): as bandwidth, load, battery or membership change,
  re-plan and compose plans (time-sharing two of them) to meet the QoE at the least energy;
- training as well as inference (:mod:`.driver`, :mod:`device.dora`): pipelined forward and
  backward passes over micro-batches, gradient sync between data-parallel replicas.

Our own choices, where the paper is silent: candidates come from devices ranked by speed and by
energy per sample, dealt round-robin into pipelines, each chain cut by dynamic programming;
transfers go through the coordinator's driver (a star through the access point, which also
carries the gradient all-reduce) rather than device to device; the schedule is an event-driven
simulation with a longest-remaining-path priority (``critical``) against FIFO; energy is busy
watts times compute time plus idle watts times latency (radio energy not modelled); a plan mix
is the lower convex hull of the Pareto set in throughput x energy per sample.

Inferred (the public record does not state it): the scheduler's exact policy (micro-batch ordering
and transfer priorities) and the adapter's re-planning triggers (membership, battery floor, a
``tolerance`` on bandwidth and slowdown).  Baselines (:mod:`.baselines`): exo's memory-weighted
ring, even split, the single best device, Petals-style min-latency chains, throughput-only.
"""
