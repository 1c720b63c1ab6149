"""The one torch definition of the Llama-architecture family.

RMSNorm, rotary position embeddings (Hugging Face "rotate_half" layout),
grouped-query attention and a SwiGLU MLP; Qwen2 adds q/k/v biases.  Parameter
names follow Hugging Face's ``LlamaForCausalLM`` so real checkpoints load by
name and our own checkpoints are valid Hugging Face directories.

Two ways to run it:
- stateless ``forward(tokens)``: positions 0..T-1, causal mask (training, ONNX);
- cached ``forward(tokens, input_pos, slots)`` after :meth:`Transformer.setup_cache`:
  each attention layer hands its new q/k/v to its KV cache, which stores k/v at
  ``input_pos`` and attends.  The cache is the seam between runtimes:
  :class:`KVCache` (here; the torch backend) holds ``slots`` sequences, one row
  each, and attends with the mask ``key_pos <= query_pos`` over the keys written
  so far, every batch row at its own positions in its own slot (batched decoding);
  the ExecuTorch export swaps in a cache built on ExecuTorch's own LLM kernels
  (:mod:`edgeweave.export.pte_export`).  Both are checked against each other by
  the parity tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeweave.models.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.type_as(x)


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().float(), emb.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x``'s last dim D by cos/sin tables that broadcast over its other dims
    (x [B, T, H, D] with cos/sin [T, 1, D] or [B, T, 1, D]; the engine's x [H, T, D] with [T, D])."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[a, b] -> [-b, a] along the last dim (the pairing RoPE's sin term uses)."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, rep: int) -> torch.Tensor:
    """Grouped-query attention, ``rep`` = Hq / Hkv. q: [B, T, Hq, D]; k, v: [B, S, Hkv, D];
    ``mask``: boolean, broadcastable to [B, Hq, T, S] (None: causal, S == T) -> [B, T, Hq, D]."""
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if rep > 1:
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    if mask is None:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2)


class KVCache(nn.Module):
    """K/V buffers [slots, ctx, Hkv, D]: one row per sequence, written at each row's positions."""

    def __init__(self, slots: int, n_kv_heads: int, ctx: int, head_dim: int, dtype: torch.dtype) -> None:
        super().__init__()
        shape = (slots, ctx, n_kv_heads, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype), persistent=False)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        input_pos: torch.Tensor,
        slots: torch.Tensor | None,
    ) -> torch.Tensor:
        """q/k/v: [B, T, H, D] at ``input_pos`` ([T]: every row; [B, T]: per row) in cache rows
        ``slots`` ([B]; None: rows 0..B-1) -> attention output [B, T, Hq, D]."""
        b, t = q.shape[:2]
        pos = input_pos.expand(b, t)
        rows = torch.arange(b, device=q.device) if slots is None else slots
        self.k[rows[:, None], pos] = k
        self.v[rows[:, None], pos] = v
        # keys past the furthest position written are masked for every row: leave them out
        n_keys = int(pos.max()) + 1
        mask = torch.arange(n_keys, device=q.device) <= pos.unsqueeze(-1)  # [B, T, S]
        rep = q.shape[2] // k.shape[2]
        return attend(q, self.k[rows, :n_keys], self.v[rows, :n_keys], mask.unsqueeze(1), rep)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)
        # the cached mode's store-and-attend (q, k, v, input_pos, slots) -> out: a KVCache,
        # or the ExecuTorch export's custom-op cache
        self.cache: nn.Module | None = None

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        input_pos: torch.Tensor | None,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """cos/sin: [T, D], or [B, T, D] for per-row positions."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim)
        cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # broadcast over heads
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.cache is not None and input_pos is not None:
            out = self.cache(q, k, v, input_pos, slots)
        else:
            out = attend(q, k, v, None, self.n_heads // self.n_kv_heads)
        return self.o_proj(out.reshape(b, t, self.n_heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.up_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, input_pos, slots)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """Hugging Face's ``model.*`` submodule: embeddings, layers, final norm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.cache_len = 0

    def setup_cache(self, ctx: int | None = None, slots: int = 1) -> None:
        """Attach K/V buffers of ``ctx`` positions (default: max_seq_len) for ``slots`` sequences."""
        cfg = self.config
        self.cache_len = ctx or cfg.max_seq_len
        dtype = self.lm_head.weight.dtype
        for layer in self.model.layers:
            layer.self_attn.cache = KVCache(slots, cfg.n_kv_heads, self.cache_len, cfg.head_dim, dtype)

    def forward(
        self,
        tokens: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens: [B, T] -> logits [B, T, vocab].  ``input_pos`` selects cached mode: [T] (every
        row at the same positions) or [B, T]; ``slots`` [B]: each row's cache row (default 0..B-1)."""
        t = tokens.shape[1]
        if input_pos is None:
            cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        else:
            cos, sin = self.rope_cos[input_pos], self.rope_sin[input_pos]
        h = self.model.embed_tokens(tokens)
        for layer in self.model.layers:
            h = layer(h, cos, sin, input_pos, slots)
        return self.lm_head(self.model.norm(h))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
