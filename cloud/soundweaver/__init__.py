"""SoundWeaver (arXiv 2603.07865): text-to-audio diffusion served warm-started from a cache of similar sounds.

The paper's mechanisms, all here:

- the reference selector (:mod:`~cloud.soundweaver.selector`): text-embedding retrieval behind a
  semantic and a duration gate, and time alignment of the chosen sound to the requested length;
- the warm start (:mod:`edgeweave.models.sound`): the aligned reference noised to an intermediate
  step with the scheduler's ``add_noise``, only the remaining steps run;
- the skip gater (:mod:`~cloud.soundweaver.gater`): a contextual bandit over skip fractions,
  rewarded by time saved and quality kept, learning online;
- the cache manager (:mod:`~cloud.soundweaver.cache`): about 1,000 entries, exponentially decayed
  importance, quality-aware eviction, refinement of popular poor entries when idle.

:mod:`~cloud.soundweaver.policy` composes them (pure, synchronous: the same object serves and is
benchmarked), :mod:`~cloud.soundweaver.baselines` holds full-step, fewer-step and NIRVANA-style
(NSDI '24) rivals behind the same interface, :mod:`~cloud.soundweaver.runtime` runs plans on the
model, :mod:`~cloud.soundweaver.service` and :mod:`~cloud.soundweaver.api` serve
``POST /v1/audio/generations``.

Our choices where the paper is silent or its parts are not available (its code is not public):
the model is a small mel-spectrogram UNet trained here on a procedural corpus
(:mod:`edgeweave.audio.corpus`), with Griffin-Lim as vocoder; MiniLM is the text embedder; the
quality the gater and cache see online is a CLAP-style judge trained here
(:mod:`edgeweave.audio.judges`), not the paper's LLM judge; the bandit is disjoint LinUCB over
seven skip fractions; alignment resamples the mel's frames (the magnitude path of a phase vocoder)
or loops a stationary sound.
"""
