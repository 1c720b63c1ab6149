"""Tempo: SLO-aware scheduling that maximizes service gain in the cloud engine.

Paper: Liu et al., "Tempo: Application-aware LLM Serving with Mixed SLO Requirements",
arXiv 2504.20068 (2025; now JITServe, NSDI 2026).

Implemented from the paper: the three request types and their service gain (``gain.py``:
latency tokens count by ``TTFT + i * TBT``, deadline and compound requests all-or-nothing);
the quantile-regression-forest output-length upper bound at the 0.95 quantile, re-predicted
every 50 generated tokens (``length.py``, ``remaining.py``); compound requests matched to
stored dependency graphs by a Gaussian kernel among K-medoids representatives, the deadline
split into stage deadlines by the matched graph's timings (``workflows.py``); priority as gain
density, "just enough bandwidth", the windowed batch rule with p = 0.95, recomputation every 50
iterations and preemption only when the gain beats the stall (``policy.py``); the baselines it
is measured against (``baselines.py``: vLLM priority, EDF, SRTF, Autellix-style LAS; FCFS with
the engine's scheduler).

Our choices where the paper is silent: the time a sequence costs is the engine time it still
needs (the prompt not yet prefilled as its share of an iteration's token budget, plus a batch
seat per token left to decode), not its decode steps alone; recomputation also before half the
tightest TTFT SLO has passed; a compound call's gain lost only with its workflow's deadline (the
stage deadline sets its slack); the slack scaling ``horizon / slack``; the iteration time
``tau`` as a running mean of the gaps between the policy's calls; the stall estimate (context
tokens over the token budget); per-stage graph features (log calls, prompt and output tokens);
the store's size and re-clustering period.  Inferred: the exact on-time token count for a
latency request (``on_time``) and the compound gain banking the tokens of a workflow's finished
calls.  The simulator (``simulator.py``, ``step_time.py``, ``workload.py``) is our harness,
driving the same policy objects on a step-time model fitted to the real engine; ``shapes.py``
rewrites any trace into workload shapes (long prompt, short prompt, bimodal mixes) and
``bound.py`` is the oracle, a proven upper bound on any schedule's service gain.
"""
