"""Batched decoding on the torch backend: several sequences, one cache row each.

Tolerance: a batched step runs the same fp32 graph as a single-sequence one, but
GEMMs over a different number of rows may pick other blockings, so only the
order of fp32 summation differs: a few ulps per op (relative ~1e-7) carried
through the layers, on logits whose spread is ~10-30.  |diff| <= 1e-4 holds on
any x86 CPU with room to spare (seen: ~1e-6); greedy choices must be identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.backends.executorch_backend import load as load_executorch
from device.backends.torch_backend import TorchBackend
from edgeweave.errors import UsageError
from edgeweave.generation.backend import BatchRow
from edgeweave.generation.chat import chat_prompt
from edgeweave.generation.sampling import SamplingParams
from tests.conftest import DEVICE_MODEL

TOLERANCE = 1e-4
PROMPTS = ["dim the kitchen lights to 30%", "make it 21 degrees in the office", "hello", "set the garage fan to high"]


@pytest.fixture(scope="module")
def batched() -> TorchBackend:
    from edgeweave.models.registry import resolve_checkpoint

    return TorchBackend.load(resolve_checkpoint(DEVICE_MODEL), slots=len(PROMPTS))


def _greedy_rows(
    backend: TorchBackend, prompts: list[list[int]], steps: int
) -> tuple[list[list[int]], list[list[np.ndarray]]]:
    """Prefill every prompt in its slot in one forward_rows call, then decode all slots together."""
    logits = backend.forward_rows([BatchRow(slot, ids, 0) for slot, ids in enumerate(prompts)])
    tokens: list[list[int]] = [[] for _ in prompts]
    trace = [logits]
    for _ in range(steps):
        for slot, row in enumerate(logits):
            tokens[slot].append(int(row.argmax()))
        rows = [BatchRow(slot, [toks[-1]], len(prompts[slot]) + len(toks) - 1) for slot, toks in enumerate(tokens)]
        logits = backend.forward_rows(rows)
        trace.append(logits)
    return tokens, trace


def test_batched_rows_match_single_sequence_runs(batched: TorchBackend) -> None:
    prompts = [chat_prompt(batched, p) for p in PROMPTS]  # different lengths: prefill groups of their own
    assert len({len(p) for p in prompts}) > 1
    steps = 12
    tokens, trace = _greedy_rows(batched, prompts, steps)
    for slot, ids in enumerate(prompts):
        single = [batched.forward(ids, 0, all_logits=False)[-1]]  # slot 0, one sequence per call
        for pos, token in enumerate(tokens[slot], start=len(ids)):
            single.append(batched.forward([token], pos, all_logits=False)[-1])
        got = np.stack([step[slot] for step in trace])
        diff = float(np.abs(got - np.stack(single)).max())
        assert diff <= TOLERANCE, f"slot {slot}: max |logit diff| {diff}"
        assert (got.argmax(-1) == np.stack(single).argmax(-1)).all()
        # and the batched greedy answer is the one the regular generation loop gives
        fixed = SamplingParams(max_tokens=steps, ignore_eos=True)
        assert batched.generate(ids, fixed).token_ids == tokens[slot]


def test_writing_one_slot_leaves_the_others_unchanged(batched: TorchBackend) -> None:
    a, b = chat_prompt(batched, PROMPTS[0]), chat_prompt(batched, PROMPTS[1])
    (first,) = batched.forward_rows([BatchRow(1, a, 0)])
    token = int(first.argmax())
    (alone,) = batched.forward_rows([BatchRow(1, [token], len(a))])
    batched.forward_rows([BatchRow(1, a, 0)])
    # slot 2 prefilled, overwritten from position 3 and decoded while slot 1 waits
    batched.forward_rows([BatchRow(2, b, 0)])
    batched.forward_rows([BatchRow(2, a[:7], 3)])
    batched.forward_rows([BatchRow(2, [5], 10)])
    (again,) = batched.forward_rows([BatchRow(1, [token], len(a))])
    np.testing.assert_array_equal(again, alone)  # same call shape, same numbers: bit for bit


def test_bad_rows_and_slots_are_refused(batched: TorchBackend) -> None:
    with pytest.raises(ValueError, match="slot out of range"):
        batched.forward_rows([BatchRow(len(PROMPTS), [1], 0)])
    with pytest.raises(ValueError, match="once per step"):
        batched.forward_rows([BatchRow(0, [1], 0), BatchRow(0, [2], 1)])
    with pytest.raises(ValueError, match="at least one token"):
        batched.forward_rows([BatchRow(0, [], 0)])
    with pytest.raises(ValueError, match="past the context"):
        batched.forward_rows([BatchRow(0, [1, 2], batched.context_length - 1)])
    with pytest.raises(UsageError, match="slots"):
        TorchBackend(batched.model, slots=0)
    with pytest.raises(UsageError, match="one sequence per program"):
        load_executorch(Path("unused.pte"), None, slots=2)
