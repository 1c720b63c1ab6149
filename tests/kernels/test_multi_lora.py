"""Every multi-LoRA implementation (loop, segmented, the Triton kernels) against the reference,
forward and gradients, and the layer that routes them inside a model.

The Triton kernels run in Triton's interpreter without a GPU (``tests/conftest.py`` sets
``TRITON_INTERPRET=1`` before anything imports triton), so their shapes stay small here.

Tolerance (fp32): every implementation accumulates the same products in fp32, in a different
order and blocking (one GEMM per segment or per adapter, 16/32/64-wide tiles; the interpreter is
numpy's fp32 matmul).  With unit-scale inputs each output sums at most ``in`` (<= 192) products of
size ~1, so the orders differ by a few ulps of the result (K * eps ~ 2e-5 relative at worst);
``rtol = atol = 1e-4`` holds on any x86 CPU with margin.  Half precisions (slow): against the fp32
reference on the same rounded inputs, with an absolute tolerance relative to the tensor's largest
value: the half paths round the intermediate and the output to the input dtype (an ulp: fp16
~1e-3, bf16 ~8e-3) and, the torch ones, partial sums of the gradients of repeated adapters.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from edgeweave.models.config import ModelConfig
from edgeweave.models.llama import Transformer
from edgeweave.models.lora import LoraConfig, module_paths
from kernels.multi_lora import (
    GROUP_BELOW_ROWS,
    NO_ADAPTER,
    LoraRouting,
    LoraWeights,
    MultiLoraLinear,
    Segments,
    attach_multi_lora,
    lora_delta,
    lora_delta_reference,
)

IMPLS = ("loop", "segmented", "triton")
TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def adapters(
    ranks: list[int | None], fan_in: int, fan_out: int, seed: int, dtype: torch.dtype = torch.float32
) -> list[LoraWeights | None]:
    """Adapters with unit-scale deltas (A ~ 1/sqrt(in), B ~ 1/sqrt(r)); None: an adapter slot without weights."""
    gen = torch.Generator().manual_seed(seed)
    out: list[LoraWeights | None] = []
    for r in ranks:
        if r is None:
            out.append(None)
            continue
        a = (torch.randn(r, fan_in, generator=gen) / fan_in**0.5).to(dtype).requires_grad_()
        b = (torch.randn(fan_out, r, generator=gen) / r**0.5).to(dtype).requires_grad_()
        out.append(LoraWeights(a, b, scaling=16.0 / r))
    return out


def leaves(x: torch.Tensor, ws: list[LoraWeights | None]) -> list[torch.Tensor]:
    return [x] + [t for w in ws if w is not None for t in (w.a, w.b)]


def forward_and_grads(
    impl: str, x: torch.Tensor, seg: Segments, ws: list[LoraWeights | None]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    delta = lora_delta(x, seg, ws, impl)  # type: ignore[arg-type]
    upstream = torch.randn(delta.shape, generator=torch.Generator().manual_seed(1)).to(delta.dtype)
    grads = torch.autograd.grad((delta * upstream).sum(), leaves(x, ws), allow_unused=True)
    # an adapter no row uses has no gradient (None) in one implementation, zeros in another
    return delta, [torch.zeros_like(t) if g is None else g for t, g in zip(leaves(x, ws), grads, strict=True)]


def as_fp32(ws: list[LoraWeights | None]) -> list[LoraWeights | None]:
    return [
        w and LoraWeights(w.a.detach().float().requires_grad_(), w.b.detach().float().requires_grad_(), w.scaling)
        for w in ws
    ]


def check(
    impl: str, seg: Segments, ws: list[LoraWeights | None], fan_in: int, dtype: torch.dtype = torch.float32
) -> None:
    x = torch.randn(seg.rows, fan_in, generator=torch.Generator().manual_seed(2)).to(dtype).requires_grad_()
    got, got_g = forward_and_grads(impl, x, seg, ws)
    # half precisions: against the fp32 result on the same (rounded) inputs, relative to each tensor's scale
    want, want_g = forward_and_grads("reference", x.detach().float().requires_grad_(), seg, as_fp32(ws))
    names = ["delta", "dx"] + [f"d{n}{i}" for i, w in enumerate(ws) if w is not None for n in "AB"]
    for name, g, w in zip(names, [got, *got_g], [want, *want_g], strict=True):
        tol = TOL[dtype] * (1.0 if dtype == torch.float32 else max(1.0, w.abs().max().item()))
        torch.testing.assert_close(g.float(), w, rtol=TOL[dtype], atol=tol, msg=lambda m, n=name: f"{impl} {n}: {m}")


# heterogeneous ranks, a NO_ADAPTER segment, empty segments, adapter 0 in two non-contiguous
# segments, an adapter slot without weights (its rows take the base only), an unused adapter (3)
MIXED = Segments((0, 5, 9, 9, 29, 30, 30, 37, 45), (0, 1, NO_ADAPTER, 2, 0, 3, 4, 0))
MIXED_RANKS: list[int | None] = [4, 8, 64, 16, None]


@pytest.mark.parametrize("impl", IMPLS)
def test_mixed_ranks_no_adapter_and_empty_segments(impl: str) -> None:
    check(impl, MIXED, adapters(MIXED_RANKS, 24, 40, seed=0), 24)


def test_triton_tables_pack_ranks_without_padding() -> None:
    from kernels.triton_multi_lora import LoraTables

    t = LoraTables.build(MIXED, adapters(MIXED_RANKS, 24, 40, seed=0), torch.device("cpu"))
    assert t.used == (0, 1, 2) and t.ranks == (4, 8, 64)  # the None slot and the unused adapter are left out
    assert t.ad_roff.tolist() == [0, 4, 12]  # A_cat [76, in]: each adapter at its own rank
    kept = [(0, 5, 4), (5, 9, 8), (9, 29, 64), (29, 30, 4), (37, 45, 4)]  # (lo, hi, rank) of non-empty adapted segments
    assert t.seg_lo.tolist() == [lo for lo, _, _ in kept]
    assert t.flat == sum((hi - lo) * r for lo, hi, r in kept)  # not rows * r_max
    assert t.ad_seg[t.ad_ptr[0] : t.ad_ptr[1]].tolist() == [0, 3, 4]  # adapter 0's three segments


@pytest.mark.parametrize("impl", IMPLS)
def test_one_segment(impl: str) -> None:
    check(impl, Segments((0, 13), (1,)), adapters([8, 16], 20, 12, seed=3), 20)


@pytest.mark.parametrize("impl", IMPLS)
def test_short_repeated_segments(impl: str) -> None:
    # decode-like: one or two rows per request, adapters repeating across the batch; the segmented
    # path groups these rows by adapter (the branch the other cases do not take)
    per_row = [0, 1, 2, 0, 0, 3, 1, NO_ADAPTER, 2, 2, 3, 0, 1]
    seg = Segments.of_rows(per_row)
    assert seg.rows < GROUP_BELOW_ROWS * len(seg.adapters)
    check(impl, seg, adapters([4, 64, 8, 16], 16, 24, seed=4), 16)


@pytest.mark.parametrize("impl", IMPLS)
def test_only_base_rows_give_zero(impl: str) -> None:
    ws = adapters([4, None], 8, 6, seed=5)
    seg = Segments((0, 3, 5), (NO_ADAPTER, 1))
    x = torch.randn(5, 8)
    assert torch.equal(lora_delta(x, seg, ws, impl), torch.zeros(5, 6))  # type: ignore[arg-type]
    assert lora_delta(x[:0], Segments((0,), ()), ws, impl).shape == (0, 6)  # type: ignore[arg-type]


@pytest.mark.parametrize("impl", ("reference", *IMPLS))
def test_bad_input_is_a_clear_error(impl: str) -> None:
    ws = adapters([4], 8, 6, seed=6)
    with pytest.raises(ValueError, match="segments cover 4 rows, x has 5"):
        lora_delta(torch.randn(5, 8), Segments((0, 4), (0,)), ws, impl)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="adapter index 2"):
        lora_delta(torch.randn(4, 8), Segments((0, 4), (2,)), ws, impl)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no adapter has weights"):
        lora_delta(torch.randn(4, 8), Segments((0, 4), (0,)), [None], impl)  # type: ignore[arg-type]


def test_unknown_impl() -> None:
    with pytest.raises(ValueError, match="unknown impl 'fast'"):
        lora_delta(torch.randn(4, 8), Segments((0, 4), (0,)), adapters([4], 8, 6, seed=6), "fast")  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_larger_batch_many_adapters(impl: str, dtype: torch.dtype) -> None:
    ranks: list[int | None] = [4, 8, 16, 32, 64, 8, 16, 4]
    per_sample = [i % 8 for i in range(12)] + [NO_ADAPTER, 3, 3, 5]
    seg = Segments.of_rows(per_sample).repeat_rows(9)  # 16 samples of 9 tokens
    check(impl, seg, adapters(ranks, 192, 160, seed=7, dtype=dtype), 192, dtype)


def test_multi_lora_linear_in_a_sequential_is_base_plus_delta() -> None:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 10))
    ws = {"0": adapters([4, 8], 12, 16, seed=8), "2": adapters([8, None], 16, 10, seed=9)}
    routing = LoraRouting("segmented", Segments((0, 2, 5, 6), (0, NO_ADAPTER, 1)), ws)
    model = copy.deepcopy(base)
    attach_multi_lora(model, ["0", "2"], routing)
    attach_multi_lora(model, ["0"], routing)  # already wrapped: left as it is
    assert isinstance(model[0], MultiLoraLinear) and isinstance(model[0].base, nn.Linear)
    x = torch.randn(6, 12)
    h = torch.relu(base[0](x) + lora_delta_reference(x, routing.segments, ws["0"]))  # type: ignore[arg-type]
    want = base[2](h) + lora_delta_reference(h, routing.segments, ws["2"])  # type: ignore[arg-type]
    torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
    routing.segments = None  # no routing: the base model
    torch.testing.assert_close(model(x), base(x), rtol=0, atol=0)
    routing.segments = Segments((0, 5), (0,))
    with pytest.raises(ValueError, match="0: routing covers 5 rows, the input has 6"):
        model(x)
    with pytest.raises(TypeError, match="not an nn.Linear"):
        attach_multi_lora(model, ["1"], routing)


@pytest.mark.parametrize("impl", ["segmented", "triton"])
def test_transformer_mixed_batch_equals_each_sample_with_its_merged_adapter(impl: str) -> None:
    cfg = ModelConfig(vocab_size=97, dim=32, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=48, max_seq_len=16)
    torch.manual_seed(0)
    base = Transformer(cfg).eval()
    lora = [
        LoraConfig(rank=4, alpha=8, target_modules=("q_proj", "v_proj", "down_proj")),
        LoraConfig(rank=16, alpha=16, target_modules=("q_proj", "v_proj", "down_proj")),
    ]
    paths = module_paths(cfg, lora[0])
    weights: dict[str, list[LoraWeights | None]] = {}
    for i, p in enumerate(paths):
        fan_in, fan_out = base.get_submodule(p).in_features, base.get_submodule(p).out_features
        weights[p] = adapters([c.rank for c in lora], fan_in, fan_out, seed=10 + i)
    job_of_sample = [1, NO_ADAPTER, 0, 1]
    tokens = torch.randint(0, cfg.vocab_size, (4, 6), generator=torch.Generator().manual_seed(3))
    routing = LoraRouting(impl, Segments.of_rows(job_of_sample).repeat_rows(6), weights)  # type: ignore[arg-type]
    model = copy.deepcopy(base)
    attach_multi_lora(model, paths, routing)
    with torch.no_grad():
        mixed = model(tokens)
        for b, job in enumerate(job_of_sample):
            merged = copy.deepcopy(base)  # PEFT's merge: W + scaling * B @ A
            for p in paths if job != NO_ADAPTER else []:
                w = weights[p][job]
                merged.get_submodule(p).weight += w.scaling * w.b @ w.a  # type: ignore[union-attr]
            torch.testing.assert_close(mixed[b], merged(tokens[b : b + 1])[0], rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU tensors without the interpreter")
def test_triton_on_cpu_without_the_interpreter_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="needs CUDA tensors, or TRITON_INTERPRET=1"):
        lora_delta(torch.randn(4, 8), Segments((0, 4), (0,)), adapters([4], 8, 6, seed=6), "triton")
