"""The Triton attention kernels against torch SDPA (TRITON_INTERPRET=1 without a GPU).

Tolerances: fp32 2e-4 (IEEE dots), fp16 2e-3, bf16 2e-2 (the kernels keep
fp32 accumulators; the error is the input rounding of P before P @ V).
"""

from __future__ import annotations

import random

import pytest
import torch

from kernels.packed_tables import build_tables
from kernels.packing import capacity_for, plan_groups
from kernels.reference import merge_partials, sdpa_padded, sdpa_per_request
from kernels.triton_attention import VarlenTables, block_m_for, packed_attention, varlen_attention
from tests.kernels.util import paged_batch, trace_lengths

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float32: 2e-4, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def run_both(batch, q, kc, vc, capacity: int, slots: int):  # type: ignore[no-untyped-def]
    q, kc, vc = q.to(DEVICE), kc.to(DEVICE), vc.to(DEVICE)
    plan = plan_groups(batch.works(), capacity, slots)
    packed = packed_attention(q, kc, vc, build_tables(plan, batch, DEVICE), batch.block_size, block_n=64)
    varlen = varlen_attention(q, kc, vc, VarlenTables(batch, DEVICE), batch.block_size, block_n=64)
    ref = sdpa_per_request(q.float(), kc.float(), vc.float(), batch)
    return plan, packed.float(), varlen.float(), ref


# float32 in `make test`; the half precisions (the same kernel code, other tolerances) with `make test-all`
@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        pytest.param(torch.float16, marks=pytest.mark.slow),
        pytest.param(torch.bfloat16, marks=pytest.mark.slow),
    ],
)
def test_trace_skewed_decode_and_prefill_batch(dtype: torch.dtype) -> None:
    rng = random.Random(7)
    kv = trace_lengths(rng, 10, longest=2048)
    kv[0] = 2048  # the longest the issue asks for, as a decode (split across groups)
    q = [1] * 7 + [min(k, 48) for k in kv[7:]]  # decodes, then prefill chunks after cached context
    batch, qt, kc, vc = paged_batch(q, kv, (8, 2, 32), dtype, seed=1)
    plan, packed, varlen, ref = run_both(batch, qt, kc, vc, capacity=512, slots=8)
    assert plan.split_tokens(), "the 2048-key decode must be split across groups"
    assert (packed - ref).abs().max() < TOL[dtype]
    assert (varlen - ref).abs().max() < TOL[dtype]


def test_shared_prefix_family_gqa_and_short_prefills() -> None:
    q = [1, 1, 1, 1, 5, 1, 17]
    kv = [300, 310, 333, 90, 5, 1, 17]
    pre = [("sys", 290), ("sys", 290), ("sys", 290), None, None, None, None]
    batch, qt, kc, vc = paged_batch(q, kv, (12, 4, 48), torch.float32, prefixes=pre, seed=2)  # REP 3, D 48
    plan, packed, varlen, ref = run_both(batch, qt, kc, vc, capacity=1024, slots=block_m_for(8, 3) // 3)
    fam = [g for g in plan.groups if {0, 1, 2} <= {s.seq for s in g.spans}]
    assert fam and any(s.keys == 290 and s.row_hi - s.row_lo == 3 for s in fam[0].segments)
    assert (packed - ref).abs().max() < 2e-4
    assert (varlen - ref).abs().max() < 2e-4


def test_padded_baseline_matches() -> None:
    batch, qt, kc, vc = paged_batch([3, 1, 9], [3, 40, 20], (4, 4, 16), torch.float32, seed=3)
    assert (sdpa_padded(qt, kc, vc, batch) - sdpa_per_request(qt, kc, vc, batch)).abs().max() < 1e-5


def test_capacity_heuristic_plan_runs_long_prefill_split_by_keys() -> None:
    # one 100-token prefill after 300 cached keys next to tiny decodes: query chunks, key splits, merges
    batch, qt, kc, vc = paged_batch([100, 1, 1], [400, 7, 2], (4, 2, 32), torch.float32, seed=4)
    cap = capacity_for(batch.works(), target_groups=16, slots=16)
    plan, packed, varlen, ref = run_both(batch, qt, kc, vc, capacity=cap, slots=16)
    assert plan.split_tokens()
    assert (packed - ref).abs().max() < 2e-4
    assert (varlen - ref).abs().max() < 2e-4


def test_lse_merge_is_exact() -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 8), torch.randn(50, 8), torch.randn(50, 8)
    s = (q @ k.T).squeeze(0)
    full = torch.softmax(s, 0) @ v
    parts = [(0, 13), (13, 40), (40, 50)]
    outs = torch.stack([torch.softmax(s[a:b], 0) @ v[a:b] for a, b in parts])
    lses = torch.stack([torch.logsumexp(s[a:b], 0) for a, b in parts])
    assert torch.allclose(merge_partials(outs, lses), full, atol=1e-6)
