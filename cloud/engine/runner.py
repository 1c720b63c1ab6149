"""Runs one engine iteration through the model: every scheduled sequence's new
tokens (prefill chunks and decode tokens alike) flattened into one batch.

It drives the weights of :class:`edgeweave.models.llama.Transformer` directly
(the one model definition) but replaces its fixed-size cache with the paged
one: each layer writes the new keys/values into their cache slots, then the
attention path reads every sequence's keys through its block table.  With LoRA adapters
loaded, each sequence's tokens form one segment of the routing tagged with its adapter, so one
forward pass serves requests of several adapters (:mod:`cloud.engine.lora`).
"""

from __future__ import annotations

from collections.abc import Sequence as Seq

import torch

from cloud.engine.attention import Attention
from cloud.engine.kv_cache import PagedKVCache
from cloud.engine.sequence import Sequence
from edgeweave.models.llama import Transformer, apply_rope
from kernels.batch import AttnBatch
from kernels.multi_lora import NO_ADAPTER, LoraRouting, Segments


def shared_prefixes(seqs: Seq[Sequence], q_lens: Seq[int], block_size: int) -> list[tuple[int, int] | None]:
    """Decode sequences whose block tables start with the same physical blocks
    (prefix-cache hits): (first block, common prefix length) per sequence."""
    families: dict[int, list[int]] = {}
    for i, (s, q) in enumerate(zip(seqs, q_lens, strict=True)):
        if q == 1 and s.block_table:
            families.setdefault(s.block_table[0], []).append(i)
    out: list[tuple[int, int] | None] = [None] * len(seqs)
    for first, members in families.items():
        if len(members) < 2:
            continue
        tables = [seqs[i].block_table for i in members]
        common = 0
        while all(len(t) > common + 1 and t[common] == tables[0][common] for t in tables):
            common += 1
        for i in members:
            out[i] = (first, common * block_size)
    return out


class ModelRunner:
    def __init__(
        self, model: Transformer, cache: PagedKVCache, attention: Attention, routing: LoraRouting | None = None
    ) -> None:
        self.model = model.eval()
        self.routing = routing or LoraRouting()
        self.cache = cache
        self.attention = attention
        cfg = model.config
        self.heads = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim)
        self.device = model.lm_head.weight.device

    @torch.inference_mode()
    def execute(self, work: list[tuple[Sequence, int]], adapters: Seq[int] | None = None) -> torch.Tensor:
        """Compute ``n`` more tokens of each sequence, through adapter ``adapters[i]`` (an index of
        the routing's adapters, ``NO_ADAPTER`` or no list: the base); logits [len(work), vocab] at
        each one's last new token."""
        bs = self.cache.block_size
        ids: list[int] = []
        pos: list[int] = []
        slots: list[int] = []
        for seq, n in work:
            lo = seq.computed
            ids += seq.tokens[lo : lo + n]
            pos += range(lo, lo + n)
            slots += [seq.block_table[p // bs] * bs + p % bs for p in range(lo, lo + n)]
        q_lens = [n for _, n in work]
        rows = [a for a, n in zip(adapters or [NO_ADAPTER] * len(work), q_lens, strict=True) for _ in range(n)]
        self.routing.segments = Segments.of_rows(rows) if any(a != NO_ADAPTER for a in rows) else None
        batch = AttnBatch(
            q_lens,
            [s.computed + n for s, n in work],
            [s.block_table for s, _ in work],
            bs,
            shared_prefixes([s for s, _ in work], q_lens, bs),
        )
        meta = self.attention.prepare(batch)
        dev = self.device
        pos_t = torch.tensor(pos, dtype=torch.long, device=dev)
        slot_t = torch.tensor(slots, dtype=torch.long, device=dev)
        cos, sin = self.model.rope_cos[pos_t], self.model.rope_sin[pos_t]
        hq, hkv, d = self.heads
        t = len(ids)
        h = self.model.model.embed_tokens(torch.tensor(ids, dtype=torch.long, device=dev))
        for li, layer in enumerate(self.model.model.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = apply_rope(attn.q_proj(x).view(t, hq, d).transpose(0, 1), cos, sin).transpose(0, 1)
            k = apply_rope(attn.k_proj(x).view(t, hkv, d).transpose(0, 1), cos, sin).transpose(0, 1)
            self.cache.k[li][slot_t] = k
            self.cache.v[li][slot_t] = attn.v_proj(x).view(t, hkv, d)
            o = self.attention(q.contiguous(), self.cache.k[li], self.cache.v[li], meta)
            h = h + attn.o_proj(o.reshape(t, hq * d))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        last = torch.tensor(batch.cu_q[1:], dtype=torch.long, device=dev) - 1
        return self.model.lm_head(self.model.model.norm(h[last]))
