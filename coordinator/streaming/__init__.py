"""Streaming a live answer: the system-neutral mechanism every chat answer runs on.

- :mod:`~coordinator.streaming.routes`: a generation opened on one endpoint (device daemon or
  OpenAI-compatible cloud), seen as deltas (text, token id, logprob), and the :class:`Job` it serves.
- :mod:`~coordinator.streaming.dispatch`: opens a route on the best endpoint that takes the job
  (placement policy order, 429 / 503 semantics), and the cached ranking per-token decisions read.
- :mod:`~coordinator.streaming.race`: two routes raced for the first token.
- :mod:`~coordinator.streaming.answer`: the live answer, the migration state machine (moves without
  losing or repeating a token; failures and stalls).
- :mod:`~coordinator.streaming.controller`: the one typed protocol a system steers an answer with
  (where it opens, whether it moves after each token or failure, what it cost).

Nothing here knows a particular system: DiSCo (:mod:`coordinator.disco.runtime`) is one controller.
"""
