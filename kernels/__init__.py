"""Triton kernels with pure-torch references (PackInfer packed attention, fused
multi-LoRA).  Not started yet: see the README's status table."""
