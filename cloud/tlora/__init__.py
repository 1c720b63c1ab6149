"""tLoRA (arXiv 2602.07263): many households' LoRA fine-tuning jobs trained together on one
frozen base, then served on both tiers.

Being built (issue 19); each module's docstring says which of the paper's mechanisms it holds.
"""
