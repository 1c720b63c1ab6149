"""Escalation: answer on a device; when the answer is likely wrong, answer on the cloud instead.

Inv-Entropy (arXiv 2506.09684) and its baselines (:mod:`edgeweave.uncertainty`) used as a
device-to-cloud gate, our application of the paper: the paper scores answers, it does not route.

- :mod:`~coordinator.escalation.policy`: the pure, typed gates (route before answering, escalate
  after the device answered) and :func:`~coordinator.escalation.policy.threshold_for_rate`;
- :mod:`~coordinator.escalation.baselines`: always-device, always-cloud, random at a given rate, a
  prompt-length router;
- :mod:`~coordinator.escalation.token_entropy`: the cheap per-token variant, a streaming controller
  that moves the answer to the cloud mid-answer when the device's predictive entropy spikes;
- :mod:`~coordinator.escalation.runtime`: the glue to the coordinator's live answers.
The benchmark (``benchmarks/uq.py``) drives the same policy objects over recorded answers.
"""
