"""Dora's stages on real device daemons (separate processes, signed HTTP, tensor frames): per-layer
profiles measured on the device, pipeline inference equal to the whole model, and a distributed
training step equal to single-process training."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import torch

from coordinator.dora.driver import infer, train_step
from coordinator.dora.remote import RemoteStage, call, profile
from device.dora.stage import ModelStage
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.wire.auth import ClusterKey
from edgeweave.wire.client import CallError as StageError  # a stage call fails as any wire call does
from edgeweave.wire.tensor_frames import encode, pack
from tests.device.dora.test_stage import Reference, _batch
from tests.device.dora.training_checks import RecordingWorker, assert_gradients_match, assert_parameters_match

MODEL = "weave-home-device"


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterKey, list[str]]]:
    with LocalCluster(tmp_path_factory.mktemp("dora")) as cluster:
        profiles = (LocalDevice("pi-1", "pi", "llamacpp", threads=1), LocalDevice("phone-1", "phone", "llamacpp"))
        started = cluster.start_devices(profiles, advertise=False)
        yield ClusterKey(cluster.secret.encode()), [s.url for s in started]


def test_layers_are_profiled_on_the_device(daemons: tuple[ClusterKey, list[str]]) -> None:
    key, (pi, _) = daemons
    prof = profile(pi, key, MODEL, batch=2, seq_len=16, rounds=1)
    assert len(prof.forward_s) == len(prof.backward_s) == len(prof.weight_bytes) == 6
    assert all(t > 0 for t in prof.forward_s + prof.backward_s)
    assert prof.activation_bytes[0] == 16 * 128 * 4 and prof.activation_bytes[-1] == 16 * 264 * 4


def test_a_pipeline_across_two_daemons_computes_what_the_whole_model_computes(
    daemons: tuple[ClusterKey, list[str]],
) -> None:
    key, (pi, phone) = daemons
    pipe = [RemoteStage.load(pi, key, "inf-a", MODEL, 0, 3), RemoteStage.load(phone, key, "inf-b", MODEL, 3, 6)]
    whole = load_checkpoint(resolve_checkpoint(MODEL))
    tokens, _ = _batch(4, 20, seed=1)
    with torch.no_grad():
        expected = torch.cat([whole(mb) for mb in tokens.tensor_split(2)])
    assert torch.equal(infer(pipe, tokens, 2), expected)
    for stage in pipe:
        stage.unload()


def test_a_training_step_across_daemons_and_a_local_replica_follows_single_process(
    daemons: tuple[ClusterKey, list[str]],
) -> None:
    key, (pi, phone) = daemons
    ckpt = resolve_checkpoint(MODEL)
    remote = [
        RemoteStage.load(pi, key, "tr-a", MODEL, 0, 2, lr=1e-3),
        RemoteStage.load(phone, key, "tr-b", MODEL, 2, 6, lr=1e-3),
    ]
    local = [RecordingWorker(ModelStage.load(ckpt, 0, 6), lr=1e-3)]
    ref = Reference()
    for step in range(2):
        tokens, targets = _batch(4, 12, seed=20 + step)
        ref.grads.sync(local[0].stage.global_parameters())
        loss = ref.step(tokens, targets)
        assert train_step([remote, local], (3, 1), tokens, targets, micro_batches=2) == pytest.approx(loss, rel=1e-5)
        # the local replica is handed the sum of the daemons' gradients and its own
        assert_gradients_match(local[0].received, ref.grads)
    expected = dict(ref.model.named_parameters())
    for name, g in {**remote[0].gradients(), **remote[1].gradients()}.items():
        assert g.shape == expected[name].shape  # every parameter came back under its model-wide name
    assert_parameters_match(local[0].stage.global_parameters(), expected, ref.grads)


def test_bad_stage_calls_are_refused_by_name(daemons: tuple[ClusterKey, list[str]]) -> None:
    key, (pi, _) = daemons
    with pytest.raises(StageError, match=r"HTTP 400: .*\[5, 3\)"):
        RemoteStage.load(pi, key, "bad", MODEL, 5, 3)
    with pytest.raises(StageError, match="HTTP 400: model: "):
        RemoteStage.load(pi, key, "bad", "no-such-model", 0, 1)
    with pytest.raises(StageError, match="HTTP 404: no stage 'ghost'"):
        RemoteStage(pi, key, "ghost").infer(torch.zeros(1, 4, dtype=torch.int64))
    stage = RemoteStage.load(pi, key, "ok", MODEL, 0, 6)
    with pytest.raises(StageError, match="HTTP 400: body: "):
        call(pi, key, "POST", "/v1/dora/stages/ok/infer", b"not frames")
    with pytest.raises(StageError, match="HTTP 400: body: expected 1 tensor frame"):
        call(pi, key, "POST", "/v1/dora/stages/ok/infer", pack([encode(torch.zeros(1)), encode(torch.zeros(1))]))
    with pytest.raises(StageError, match="HTTP 400: key: "):
        stage.backward("never-forwarded", torch.zeros(1, 4, 128))
    with pytest.raises(StageError, match="HTTP 400: step: "):
        stage.step()  # loaded for inference
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(urllib.request.Request(pi + "/v1/dora/stages/ok/step", data=b"", method="POST"))
    assert unsigned.value.code == 401
