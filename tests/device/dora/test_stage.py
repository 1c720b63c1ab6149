"""Dora's execution in-process: a model (the language model or the traffic CNN) cut into stages
computes what the whole model computes, and pipeline x data-parallel training follows single-process
training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from coordinator.dora.driver import infer, train_step
from device.dora.stage import IGNORE, ModelStage, StageWorker, load_model
from edgeweave.errors import UsageError
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.vision import NAME as CNN
from edgeweave.models.vision import frames
from tests.device.dora.training_checks import (
    GradientLog,
    RecordingWorker,
    assert_gradients_match,
    assert_parameters_match,
)

CKPT = resolve_checkpoint("weave-home-device")  # 6 decoder layers
CNN_CKPT = resolve_checkpoint(CNN)  # 8 blocks


def _batch(n: int, t: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(8, 264, (n, t + 1), generator=g)
    targets = seq[:, 1:].clone()
    targets[:, : t // 4] = IGNORE  # a prompt part that does not count
    return seq[:, :-1], targets


def _frames(n: int, t: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return frames(n, seed)


class Reference:
    """Single-process training of the whole model, as the distributed steps should go."""

    def __init__(self, checkpoint: object = CKPT) -> None:
        self.model = load_model(checkpoint).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05)
        self.grads = GradientLog(self.model)

    def step(self, tokens: torch.Tensor, targets: torch.Tensor) -> float:
        logits = self.model(tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)
        self.opt.zero_grad()
        loss.backward()
        self.grads.record()
        self.opt.step()
        return float(loss)


MODELS = pytest.mark.parametrize(
    ("ckpt", "batch", "cuts"),
    [
        (CKPT, _batch, (((0, 2), (2, 5), (5, 6)), ((0, 3), (3, 6)), ((0, 1), (1, 4), (4, 6)))),
        (CNN_CKPT, _frames, (((0, 3), (3, 7), (7, 8)), ((0, 5), (5, 8)), ((0, 1), (1, 6), (6, 8)))),
    ],
    ids=["decoder", "cnn"],
)


@MODELS
def test_pipeline_inference_equals_the_whole_model(ckpt, batch, cuts) -> None:
    whole = load_model(ckpt)
    tokens, _ = batch(4, 24, seed=0)
    stages = [StageWorker(ModelStage.load(ckpt, a, b)) for a, b in cuts[0]]
    with torch.no_grad():
        for micro in (1, 2, 4):
            expected = torch.cat([whole(mb) for mb in tokens.tensor_split(micro)])
            assert torch.equal(infer(stages, tokens, micro), expected)
        assert torch.allclose(infer(stages, tokens, 2), whole(tokens), atol=1e-5)  # batch size aside


@MODELS
def test_pipeline_and_data_parallel_training_follow_single_process_training(ckpt, batch, cuts) -> None:
    torch.manual_seed(0)
    ref = Reference(ckpt)
    pipes = [
        [RecordingWorker(ModelStage.load(ckpt, a, b), lr=1e-3) for a, b in cut] for cut in cuts[1:]
    ]  # cut differently
    for step in range(4):
        tokens, targets = batch(6, 16, seed=10 + step)
        ref.grads.sync({n: p for w in pipes[0] for n, p in w.stage.global_parameters().items()})
        loss = ref.step(tokens, targets)
        assert train_step(pipes, (4, 2), tokens, targets, micro_batches=2) == pytest.approx(loss, rel=1e-5), step
        for worker in (w for pipe in pipes for w in pipe):
            assert_gradients_match(worker.received, ref.grads)
    expected = dict(ref.model.named_parameters())
    for worker in (w for pipe in pipes for w in pipe):
        assert_parameters_match(worker.stage.global_parameters(), expected, ref.grads)


def test_bad_stage_ranges_and_steps_are_refused() -> None:
    with pytest.raises(UsageError, match=r"\[4, 9\)"):
        ModelStage.load(CKPT, 4, 9)
    with pytest.raises(UsageError, match="inference"):
        StageWorker(ModelStage.load(CKPT, 0, 6)).step()
    with pytest.raises(ValueError, match="must split"):
        train_step([[StageWorker(ModelStage.load(CKPT, 0, 6), lr=1e-3)]], (3,), *_batch(2, 8, 0), micro_batches=1)
