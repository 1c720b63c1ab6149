"""Circinus (v2 title: Compass): SLO-aware planning of compound AI pipelines across device, edge
and cloud tiers (arXiv 2504.16397).

Implemented from the paper:

- many queries, each a pipeline (a DAG of operators, each with configurations and allowed tiers)
  with SLOs on latency, accuracy and cost (:mod:`.spec`);
- decomposed planning (:mod:`.planner`): per operator (dominated options dropped once per
  pipeline), per SLO dimension (branch-and-bound pruning on accuracy, cost and latency bounds),
  per query against the others (the non-dominated plans handed to the global selection);
- plan similarity: a query planned before reuses its plans; plans found under other SLOs seed the
  search (:mod:`.planner`); plans sharing an operator choice share its profiling samples;
- the precision-aware profiler (:mod:`.profiles`): latency sampled incrementally, stopped as soon
  as the estimate's interval lies on one side of the SLO;
- run-time matching of queries to plans to maximize global SLO goodput under tier capacities
  (:mod:`.selection`), and re-planning when a tier fails or attainment drops (:mod:`.replan`).

Our own choices, where the paper is silent: the matching with capacities is a generalized
assignment problem, solved as two 0-1 integer programs by HiGHS (most goodput, then least cost)
rather than a plain bipartite matching; intervals are Student-t on the samples taken; a
pipeline's accuracy is the product of its operators' (errors compound); cost is the tiers'
price per busy hour; operators are real models (:mod:`edgeweave.operators`) measured on this
machine and scaled per tier (:mod:`.measure`), or run on a live cluster's tiers through a
coordinator (:mod:`.cluster`, :mod:`.executor`, :mod:`.api`).

Inferred (the public record does not state it): the exact pruning bounds, how similarity seeds
the search's incumbents, and the early-stopping rule's precision.  Baselines (:mod:`.baselines`):
exhaustive per-query search, per-query greedy, single-tier planning, profiling without early
stopping.
"""
