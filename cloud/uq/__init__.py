"""Uncertainty of the cloud's answers: Inv-Entropy (arXiv 2506.09684, NeurIPS 2025) on the cloud engine.

The measures themselves are the core's (:mod:`edgeweave.uncertainty`: perturb the last user turn,
sample answers to every input, embed, measure); this package supplies what the cloud tier owns:

- :mod:`~cloud.uq.sampler`: :class:`~cloud.uq.sampler.EngineSampler`, the paper's repeated
  sampling (and Kadavath et al.'s p(True), a baseline) as real sequences on the engine, sharing the
  prompt's KV blocks through the prefix cache;
- :mod:`~cloud.uq.runtime`: the sentence embedder (all-MiniLM-L6-v2; the paper used
  all-mpnet-base-v2, which cannot be downloaded here), loaded on first use off the event loop, and
  the scorer of one answer (a measure that does not read the answer samples beside it);
- :mod:`~cloud.uq.api`: ``POST /v1/embeddings`` and the ``uncertainty`` extension of chat requests
  (the score of choice 0, in the body or the last streamed chunk; its cost in ``usage``).

Our choices where the paper is silent: a completions request (no chat messages to perturb) cannot
ask for a score; OpenAI's ``n`` answers share one prompt prefill.
"""
