"""Index tables that tell the packed kernel what each program computes.

Built from a :class:`~kernels.packing.PackingPlan` and the batch's layout.  Rows of
all groups are flattened group after group (``grp_row_ptr``), and so are
segments (``grp_seg_ptr``); a row names the query token it reads and writes
and, when its sequence was split across groups, the partial-output slot it
writes instead (merged afterwards by log-sum-exp, ``merge_*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.batch import AttnBatch
from kernels.packing import PackingPlan, grows


@dataclass
class PackedTables:
    plan: PackingPlan
    grp_row_ptr: torch.Tensor
    grp_seg_ptr: torch.Tensor
    row_tok: torch.Tensor
    row_pos: torch.Tensor
    row_part: torch.Tensor  # -1: write the output directly
    seg_bt: torch.Tensor  # offset of the segment's sequence in the flat block table
    seg_klo: torch.Tensor
    seg_khi: torch.Tensor
    seg_rlo: torch.Tensor  # group-local rows that see the segment
    seg_rhi: torch.Tensor
    seg_grows: torch.Tensor  # int32 0/1: a decode step appends a key to this segment
    merge_ptr: torch.Tensor  # CSR over split tokens -> their partial slots
    merge_parts: torch.Tensor
    merge_tok: torch.Tensor
    bt_flat: torch.Tensor

    @property
    def num_groups(self) -> int:
        return len(self.plan.groups)

    @property
    def num_parts(self) -> int:
        return int(self.merge_parts.numel())

    def advance(self) -> None:
        """Account one decode step in place: growing segments and decode rows gain a key."""
        self.seg_khi += self.seg_grows
        self.row_pos += 1


def build_tables(plan: PackingPlan, batch: AttnBatch, device: torch.device | str) -> PackedTables:
    works = batch.works()
    bt_flat, bt_off_t = batch.block_table_tensors(device)
    bt_off = bt_off_t.tolist()
    split = plan.split_tokens()
    parts: dict[tuple[int, int], list[int]] = {}
    n_parts = 0
    grp_row_ptr, grp_seg_ptr = [0], [0]
    row_tok, row_pos, row_part = [], [], []
    seg_cols: list[list[int]] = [[] for _ in range(6)]
    for g in plan.groups:
        for sp in sorted(g.spans, key=lambda s: s.row):
            for i in range(sp.q_lo, sp.q_hi):
                row_tok.append(batch.cu_q[sp.seq] + i)
                row_pos.append(works[sp.seq].pos(i))
                if (sp.seq, i) in split:
                    parts.setdefault((sp.seq, i), []).append(n_parts)
                    row_part.append(n_parts)
                    n_parts += 1
                else:
                    row_part.append(-1)
        for s in g.segments:
            for col, val in zip(
                seg_cols, (bt_off[s.seq], s.k_lo, s.k_hi, s.row_lo, s.row_hi, int(grows(s, works))), strict=False
            ):
                col.append(val)
        grp_row_ptr.append(len(row_tok))
        grp_seg_ptr.append(len(seg_cols[0]))
    merge_ptr, merge_parts, merge_tok = [0], [], []
    for (seq, i), slots in parts.items():
        merge_parts += slots
        merge_ptr.append(len(merge_parts))
        merge_tok.append(batch.cu_q[seq] + i)

    def t(xs: list[int]) -> torch.Tensor:
        return torch.tensor(xs, dtype=torch.int32, device=device)

    return PackedTables(
        plan,
        t(grp_row_ptr),
        t(grp_seg_ptr),
        t(row_tok),
        t(row_pos),
        t(row_part),
        *(t(c) for c in seg_cols),
        t(merge_ptr),
        t(merge_parts),
        t(merge_tok),
        bt_flat,
    )
