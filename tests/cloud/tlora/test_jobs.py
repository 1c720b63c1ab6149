"""JobPlan validation and the step-indexed data order and schedule every tLoRA path shares."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator

import pytest
import torch

from cloud.tlora.jobs import FLOOR, JobPlan, batch_at, lr_at, steps_for_epochs
from edgeweave.data.smarthome import Example, examples
from edgeweave.models.lora import LoraConfig

# a household's habits the base has not seen: its hub knows the rooms by its own names
RENAMES = {
    "living room": "lounge",
    "kitchen": "galley",
    "bedroom": "sleep room",
    "kids room": "den",
    "office": "study",
    "front": "main",
    "back": "rear",
    "garage": "carport",
    "patio": "terrace",
}


def household_examples(seed: int, n: int, max_chars: int = 70) -> tuple[Example, ...]:
    """``n`` short smart-home commands (prompt + reply at most ``max_chars``: ~75 tokens, so the
    training tests stay fast) whose replies name the rooms by RENAMES: loss the base has to learn."""
    out = []
    for ex in examples(seed, "train"):
        if len(ex.prompt) + len(ex.target) > max_chars:
            continue
        target = ex.target
        for room, alias in RENAMES.items():
            target = target.replace(f'"{room}"', f'"{alias}"')
        out.append(Example(ex.prompt, target))
        if len(out) == n:
            return tuple(out)
    raise AssertionError("unreachable: the generator's stream is endless")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Training tests run torch on one thread: its 2-thread pool on a shared 2-core machine spins
    (measured ~10x slower), and one thread keeps the reduction order fixed within a run."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_plan(job_id: str = "job", **kw: object) -> JobPlan:
    fields: dict[str, object] = {
        "base_model": "weave-home-device",
        "lora": LoraConfig(rank=8, alpha=16.0),
        "batch_size": 4,
        "learning_rate": 5e-3,
        "total_steps": 6,
        "warmup_steps": 2,
        "seed": 0,
        "examples": household_examples(0, 24),
    }
    fields.update(kw)
    return JobPlan(job_id=job_id, **fields)  # type: ignore[arg-type]


def test_batch_at_reads_epochs_of_permutations_and_is_resumable() -> None:
    plan = make_plan(batch_size=5, examples=household_examples(1, 10), total_steps=8)
    batches = [batch_at(plan, s) for s in range(8)]
    stream = [ex for b in batches for ex in b]
    for epoch in range(4):  # every epoch reads each example exactly once
        assert sorted(map(repr, stream[epoch * 10 : (epoch + 1) * 10])) == sorted(map(repr, plan.examples))
    assert stream[:10] != stream[10:20]  # a new order each epoch
    # step 5 alone, computed cold, equals what the stream read there: nothing carried between steps
    assert batch_at(dataclasses.replace(plan), 5) == batches[5]
    assert batch_at(dataclasses.replace(plan, seed=1), 0) != batches[0]


def test_batch_straddles_epochs() -> None:
    plan = make_plan(batch_size=4, examples=household_examples(2, 6), total_steps=3)
    stream = [ex for s in range(3) for ex in batch_at(plan, s)]
    assert sorted(map(repr, stream[:6])) == sorted(map(repr, plan.examples))
    assert sorted(map(repr, stream[6:12])) == sorted(map(repr, plan.examples))


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor() -> None:
    plan = make_plan(learning_rate=1e-2, warmup_steps=3, total_steps=12)
    lrs = [lr_at(plan, s) for s in range(12)]
    assert lrs[:3] == pytest.approx([1e-2 / 4, 2e-2 / 4, 3e-2 / 4])
    assert lrs[3] == pytest.approx(1e-2)
    assert lrs[-1] == pytest.approx(FLOOR * 1e-2)
    assert lrs[7] == pytest.approx(1e-2 * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * 0.5))))
    assert all(a >= b for a, b in itertools.pairwise(lrs[3:]))
    assert lr_at(make_plan(warmup_steps=0, total_steps=1), 0) == pytest.approx(5e-3)


def test_steps_for_epochs() -> None:
    assert steps_for_epochs(100, 8, 1.0) == 13
    assert steps_for_epochs(100, 8, 2.5) == 32
    assert steps_for_epochs(3, 8, 0.1) == 1
    for args in ((0, 8, 1.0), (10, 0, 1.0), (10, 8, 0.0), (10, 8, float("nan"))):
        with pytest.raises(ValueError):
            steps_for_epochs(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("learning_rate", float("inf")),
        ("total_steps", 0),
        ("warmup_steps", -1),
        ("warmup_steps", 7),
        ("seed", -1),
        ("examples", ()),
        ("slowdown_bound", 0.9),
        ("lora", {"rank": 8}),
    ],
)
def test_bad_plan_values_raise_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        make_plan(**{field: value})


def test_bad_steps_raise() -> None:
    plan = make_plan()
    for step in (-1, plan.total_steps):
        with pytest.raises(ValueError, match="step"):
            batch_at(plan, step)
        with pytest.raises(ValueError, match="step"):
            lr_at(plan, step)
    with pytest.raises(ValueError, match="job_id"):
        make_plan("")
