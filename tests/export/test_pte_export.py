"""The ExecuTorch export's rewritten graph computes the model's numbers (eagerly, before
export: the export itself is covered by tests/backends/test_parity.py and
tests/models/test_hf_checkpoint.py).

Tolerances: the rotated projections only permute and negate weight rows, so they
reproduce ``rotate_half`` of the projection to fp32 rounding of the same dot
products (1e-6 on outputs of size ~1); the whole model differs from the reference
only in summation order (the RMSNorm mean as a dot product, ExecuTorch's SDPA
kernel): 1e-4 on logits of spread ~1-10.
"""

from __future__ import annotations

import pytest
import torch

from edgeweave.export.pte_export import _rotated, as_exported, register_llm_kernels
from edgeweave.models.config import ModelConfig
from edgeweave.models.llama import Transformer, rotate_half

CONFIGS = [
    ModelConfig(vocab_size=97, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, max_seq_len=64),
    ModelConfig(vocab_size=97, dim=64, n_layers=2, n_heads=4, n_kv_heads=1, ffn_dim=96, max_seq_len=64, qkv_bias=True),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_exported_graph_matches_the_model_in_chunks(cfg: ModelConfig) -> None:
    register_llm_kernels()
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
        attn = model.model.layers[0].self_attn
        x = torch.randn(3, 64)
        rotated = _rotated(attn.q_proj, cfg.n_heads, cfg.head_dim)(x).view(3, cfg.n_heads, -1)
        expected = rotate_half(attn.q_proj(x).view(3, cfg.n_heads, -1))
        torch.testing.assert_close(rotated, expected, atol=1e-6, rtol=0)

        tokens = torch.randint(0, cfg.vocab_size, (1, 20))
        full = model(tokens)
        exported = as_exported(model)
        # a prefill chunk, then one token per call, then a rewrite from position 15 (resume)
        chunks = [exported(tokens[:, :12], torch.arange(12))]
        chunks += [exported(tokens[:, i : i + 1], torch.tensor([i])) for i in range(12, 20)]
        torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-4, rtol=0)
        again = exported(tokens[:, 15:], torch.arange(15, 20))
        torch.testing.assert_close(again, full[:, 15:], atol=1e-4, rtol=0)
    assert model.model.layers[0].self_attn is attn  # the export works on a copy
