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
The fused multi-LoRA kernel (tLoRA) comes with its issue.
"""
