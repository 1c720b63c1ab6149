"""Triton kernels with a pure-torch reference beside each; tests run them in Triton's interpreter
(``TRITON_INTERPRET=1``) on machines without a GPU.

PackInfer (arXiv 2602.06072): packed attention for heterogeneous batches.
- Implemented from the paper: packing variable-length attention work into load-balanced groups under
  a capacity ``C`` (longest first into the least-loaded group), splitting a long sequence's keys over
  groups and merging the pieces by log-sum-exp, grouping decode sequences that share a prefix so the
  prefix is walked once, regrouping when the load drift ``t * dL`` reaches ``C / 2``
  (``packing.py``); the kernel walking only a group's valid query-key regions from an offset table
  (``packed_tables.py``, ``triton_attention.py``).
- Our own choices: the table layout and tile sizes; a varlen (unpacked) Triton kernel of our own as
  the FlashAttention-style baseline; torch SDPA per request as the reference (``reference.py``).
- Not re-verified: the paper's GPU timings (TBT -13..20%, throughput +9..25%); our GPU figures are
  pending a lent GPU.

tLoRA (arXiv 2602.07263) with Punica's SGMV / S-LoRA's MBGMM for serving: multi-LoRA over a batch
whose row segments use different adapters of different ranks (``multi_lora.py``).
- Implemented: one contract, ``lora_delta``, four ways: the per-segment reference, the loop over
  adapters (baseline), the segmented torch path (slices, or rows grouped by adapter for short
  segments; the CPU path of tLoRA's trainer and the cloud engine) and the fused Triton segmented
  gather matmul (``triton_multi_lora.py``: shrink, expand and the per-adapter weight-gradient
  reduction, forward and backward, A/B packed as ``[sum r, in]`` / ``[out, sum r]`` and a flat
  intermediate, no adapter padded to the largest rank); ``MultiLoraLinear`` /
  ``attach_multi_lora`` route it inside a model.
- Our own choices: the flat intermediate and tile tables, saving it for the backward, the size
  rule between slices and grouping; a padded-to-max-rank ``bmm`` as the Punica/S-LoRA-style
  padded baseline (``benchmarks/lora_kernel.py``).
- Not re-verified: the papers' GPU speed-ups; the kernel is tested in Triton's interpreter, its
  GPU timing is pending a lent GPU.
"""
