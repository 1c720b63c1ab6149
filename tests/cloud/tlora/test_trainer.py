"""GroupTrainer mechanics: nano-batches equal the un-split step, a checkpointed job resumes on the
trajectory it left, the super-model's padding, the step report, and bad calls."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from cloud.tlora.jobs import batch_at
from cloud.tlora.solo import load_base
from cloud.tlora.supermodel import JobAdapter
from cloud.tlora.trainer import STATE_FILE, GroupTrainer, JobState, StepReport
from edgeweave.errors import ModelFileError
from edgeweave.models.llama import Transformer
from edgeweave.models.lora import LoraAdapter, LoraConfig
from edgeweave.models.tokenizer import ByteTokenizer
from edgeweave.models.train import make_batch
from tests.cloud.tlora.test_jobs import make_plan, one_torch_thread  # noqa: F401 (fixture)
from tests.cloud.tlora.test_solo_parity import BASE, IMPL, PLANS, assert_same_adapter

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# resume: same code, same machine, same thread, same group, so the same sums in the same order;
# a few ulps of headroom all the same
TIGHT = {"rtol": 1e-5, "atol": 1e-7}


@pytest.fixture(scope="module")
def base(request: pytest.FixtureRequest) -> Transformer:
    request.getfixturevalue("one_torch_thread")
    return load_base(BASE)


def trainer_of(base: Transformer, *plans: object) -> GroupTrainer:
    trainer = GroupTrainer(copy.deepcopy(base), IMPL)
    for p in plans:
        trainer.add(p)  # type: ignore[arg-type]
    return trainer


def assert_states_close(x: JobState, y: JobState, **tol: float) -> None:
    assert x.step == y.step
    for path, (a, b) in x.adapter.weights.items():
        torch.testing.assert_close(a, y.adapter.weights[path][0], **tol)
        torch.testing.assert_close(b, y.adapter.weights[path][1], **tol)


def test_nano_batches_equal_the_unsplit_step(base: Transformer) -> None:
    whole, nano = trainer_of(base, *PLANS), trainer_of(base, *PLANS)
    for _ in range(2):
        r1, r3 = whole.step(), nano.step(nano_batches=3)
        assert (r1.nano_batches, r3.nano_batches) == (1, 3)
        assert [(j.job_id, j.samples, j.tokens) for j in r1.losses] == [
            (j.job_id, j.samples, j.tokens) for j in r3.losses
        ]
        assert [j.loss for j in r3.losses] == pytest.approx([j.loss for j in r1.losses], rel=1e-5)
    for p in PLANS:  # the split changes summation order only: the parity tests' tolerance and reason
        assert whole.state(p.job_id).step == nano.state(p.job_id).step == 2
        assert_same_adapter(nano.state(p.job_id).adapter, whole.state(p.job_id).adapter, p)


def test_checkpoint_resume_follows_the_uninterrupted_trajectory(base: Transformer, tmp_path: Path) -> None:
    a, b = PLANS[:2]
    going = trainer_of(base, a, b)
    going.step()
    going.step()
    for p in (a, b):
        going.state(p.job_id).save(tmp_path / p.job_id)
    elsewhere = GroupTrainer(copy.deepcopy(base), IMPL)  # another worker, fresh from the files
    for p in (a, b):
        elsewhere.add(p, resume=JobState.load(tmp_path / p.job_id, p))
    for _ in range(2):
        r1, r2 = going.step(), elsewhere.step()
        assert [j.loss for j in r2.losses] == pytest.approx([j.loss for j in r1.losses], rel=1e-6)
    for p in (a, b):
        assert_states_close(going.state(p.job_id), elsewhere.state(p.job_id), **TIGHT)
        opt1, opt2 = going.state(p.job_id).optimizer, elsewhere.state(p.job_id).optimizer
        torch.testing.assert_close(opt1["state"][1]["exp_avg_sq"], opt2["state"][1]["exp_avg_sq"], **TIGHT)


def test_job_state_file_errors(base: Transformer, tmp_path: Path) -> None:
    a, b = PLANS[:2]
    with pytest.raises(ModelFileError, match="no tLoRA job checkpoint"):
        JobState.load(tmp_path, a)
    trainer = trainer_of(base, a)
    trainer.state("a").save(tmp_path)
    with pytest.raises(ModelFileError, match="does not match plan"):
        JobState.load(tmp_path, b)
    (tmp_path / STATE_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="unreadable"):
        JobState.load(tmp_path, a)


def test_padding_width_does_not_change_a_samples_logits(base: Transformer) -> None:
    """Right padding + causal attention: a sample's real-token logits in a mixed batch padded to
    a longer sample equal its logits alone (up to the batched GEMMs' summation order)."""
    trainer = trainer_of(base, PLANS[0], PLANS[1])
    short, long = PLANS[0].examples[0], max(PLANS[1].examples, key=lambda e: len(e.prompt) + len(e.target))
    tok = ByteTokenizer()
    adapters = [JobAdapter.of(LoraAdapter.init(base.config, p.lora, BASE, seed=7)) for p in PLANS[:2]]
    for ad in adapters:  # non-zero B so the adapters act
        for _, bw in ad.params.values():
            torch.nn.init.normal_(bw, std=0.05)
    x_alone, _ = make_batch(tok, [short], 512)
    x_mixed, _ = make_batch(tok, [short, long], 512)
    assert x_mixed.shape[1] > x_alone.shape[1]
    with torch.no_grad():
        alone = trainer.model.forward(x_alone, [0], adapters)
        mixed = trainer.model.forward(x_mixed, [0, 1], adapters)
        long_alone = trainer.model.forward(make_batch(tok, [long], 512)[0], [1], adapters)
    torch.testing.assert_close(mixed[0, : x_alone.shape[1]], alone[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mixed[1], long_alone[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(mixed[0, : x_alone.shape[1]], base(x_alone)[0], atol=1e-3)  # the adapter acted
    with pytest.raises(ValueError, match="ordered by job"):
        trainer.model.forward(torch.cat([x_mixed, x_mixed]), [0, 1, 0, 1], adapters)


def test_step_report_done_and_an_empty_group(base: Transformer) -> None:
    short = make_plan("s", total_steps=1, warmup_steps=0, batch_size=2, seed=4)
    trainer = trainer_of(base, short)
    assert trainer.job_ids == ("s",) and not trainer.done("s")
    report = trainer.step(nano_batches=9)  # more nano-batches than samples: one per sample
    assert isinstance(report, StepReport) and report.nano_batches == 2 and report.seconds > 0
    (loss,) = report.losses
    tok = ByteTokenizer()
    x, _ = make_batch(tok, batch_at(short, 0), 512)
    assert (loss.job_id, loss.samples, loss.tokens) == ("s", 2, int((x != tok.PAD).sum()))
    assert loss.loss > 0
    assert trainer.done("s")
    idle = trainer.step()  # every member done: nothing to do
    assert (idle.losses, idle.nano_batches) == ((), 0)
    state = trainer.remove("s")
    assert state.step == 1 and trainer.job_ids == ()


def test_bad_calls_raise(base: Transformer) -> None:
    a, b = PLANS[:2]
    trainer = trainer_of(base, a)
    with pytest.raises(ValueError, match="already in this group"):
        trainer.add(a)
    with pytest.raises(KeyError, match="no job"):
        trainer.remove("nope")
    with pytest.raises(KeyError, match="no job"):
        trainer.done("nope")
    with pytest.raises(ValueError, match="nano_batches"):
        trainer.step(nano_batches=0)
    with pytest.raises(ValueError, match="does not match plan"):
        trainer.add(b, resume=trainer.state("a"))
    other = make_plan("a2", lora=LoraConfig(rank=4, alpha=8.0, target_modules=("q_proj",)))
    wrong = trainer.state("a")
    wrong.plan = other  # the job id matches, the adapter's modules do not
    with pytest.raises(ValueError, match="does not match plan"):
        trainer.add(other, resume=wrong)
