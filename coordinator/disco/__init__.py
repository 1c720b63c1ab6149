"""DiSCo: device-server cooperative LLM streaming (arXiv 2502.11417, ACL Findings 2025).

Implemented from the paper:

- the unified cost, cloud money and device energy joined by an exchange rate, device energy from a
  FLOPs-based linear model (:mod:`~coordinator.disco.cost`);
- the dispatch controller within a budget ``E[I(l) * l] <= b * E[l]``: device-constrained (the
  server starts, the device after a wait ``w(l)``; budget to the tail first, then the mean) and
  server-constrained (a length threshold ``l_th``: short prompts on the device, long ones race both)
  (:mod:`~coordinator.disco.dispatch_policy`), with a linear device TTFT profile and an empirical
  server TTFT distribution;
- the migration controller: keep a buffer of ``r_c * t_m`` tokens ahead of the reader, move when it
  covers the migration time and the decode-cost saving over the remaining length beats the target's
  prefill; token ids sent, no KV transferred, the target prefills prompt + prefix
  (:mod:`~coordinator.disco.migration`; the token-level handoff itself is the system-neutral
  :mod:`coordinator.streaming.answer`, steered by :class:`~coordinator.disco.runtime.DiscoController`);
- the baselines (device-only, server-only, random split at equal budget, always race,
  :mod:`~coordinator.disco.baselines`) and a trace-driven simulator on the same policy object
  (:mod:`~coordinator.disco.simulator`).

Our own addition: warming the move's target (:mod:`~coordinator.disco.migration`): while one tier
answers, the other prefills the answer into its prompt cache in rounds (``POST /v1/prefill``), decided
and priced by the same policy, so that a move prefills only the tail (the paper's target prefills
prompt + prefix at the move); a race's loser counts as having prefilled the prompt.

Our own choices: one policy object per coordinator with per-model state
(:mod:`~coordinator.disco.policy`); the remaining length estimated from a window of finished answers
(``E[min(L, max_tokens) - n | L > n]``), no migration priced before ten answers are known; a move for
cost stops the source at once and resumes there if the target fails; failures and stalls (``stall_s``)
move an answer whatever it costs; prompt lengths estimated from characters at the ratio measured on
earlier answers; the device's measured energy per token from its telemetry; a client's ``prefer``
holds against cost moves unless the request allows them (``allow_cost_moves``); a race loser and a
migration source are charged for what they generated.

Inferred (the paper does not say): the TTFT profiles are refitted after every one of the first 50
measurements, then every 50; the target must decode at least at reading pace; one answer migrates at
most once in the simulator; token ids only (the text path for differing vocabularies is not built).
"""
