"""weave-traffic-cnn: deterministic synthetic frames, training that learns them, the committed
checkpoint's accuracy, clear errors for a broken checkpoint, and an operator's accuracy measured
once per checkpoint and validation set."""

from __future__ import annotations

import pytest
import torch

from edgeweave.errors import ModelFileError
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.vision import CLASSES, NAME, VisionConfig, accuracy, frames, load_cnn, save_cnn, train_cnn


def test_frames_are_seeded_and_cover_every_class() -> None:
    x, y = frames(256, seed=3)
    x2, y2 = frames(256, seed=3)
    assert x.shape == (256, 3, 64, 64) and torch.equal(x, x2) and torch.equal(y, y2)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert set(y.tolist()) == set(range(len(CLASSES)))
    assert not torch.equal(frames(8, seed=4)[0], x[:8])


def test_short_training_learns_and_round_trips(tmp_path) -> None:
    # the full classifier's layers on 32x32 frames (a quarter of the 64x64 compute; the same training loop)
    model, report = train_cnn(steps=150, batch=32, config=VisionConfig(image_size=32))
    assert report.accuracy > 0.35  # four classes: chance is 0.25 (0.54 measured)
    loaded = load_cnn(save_cnn(model, tmp_path / "cnn"))
    x, _ = frames(4, seed=1, size=32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_committed_checkpoint_reads_the_road() -> None:
    assert accuracy(load_cnn(resolve_checkpoint(NAME))) > 0.8


def test_broken_checkpoints_name_the_file(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="config.json"):
        load_cnn(tmp_path)
    model, _ = train_cnn(steps=1, batch=2)
    save_cnn(model, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_cnn(tmp_path)


def test_an_operators_accuracy_is_measured_once_per_checkpoint(tmp_path, monkeypatch) -> None:
    from edgeweave.operators.runtime import VisionOp

    monkeypatch.setenv("EDGEWEAVE_CACHE", str(tmp_path))
    op = VisionOp("traffic-det-w25-r32")
    first = op.accuracy(n=64)
    assert len(list((tmp_path / "accuracy").glob("traffic-det-w25-r32-*-frames64-seed10000.json"))) == 1

    def no_inference(*args: object) -> None:
        raise AssertionError("the validation set ran again")

    monkeypatch.setattr(VisionOp, "__call__", no_inference)
    assert op.accuracy(n=64) == first  # read back
    with pytest.raises(AssertionError, match="ran again"):
        op.accuracy(n=32)  # another validation set is measured
