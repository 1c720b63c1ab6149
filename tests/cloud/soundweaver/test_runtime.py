"""The sound model's sampling mechanics (diffusers' UNet and schedulers) and SoundWeaver's runtime,
on a tiny randomly initialised UNet (the mechanics, not the sound, are under test here; the trained
model is exercised through the cloud service in test_api.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cloud.soundweaver.baselines import Nirvana
from cloud.soundweaver.policy import SoundJob, SoundWeaver
from cloud.soundweaver.runtime import SoundRuntime
from edgeweave.audio.corpus import SAMPLE_RATE, SoundSpec, render
from edgeweave.audio.judges import Clap, Judges, SoundClassifier
from edgeweave.audio.mel import N_MELS, frames_for, to_mel
from edgeweave.audio.solvers import Solver
from edgeweave.models.embedder import load_embedder
from edgeweave.models.sound import SoundDiffusion, SoundModelConfig, SoundUNet

TINY = SoundModelConfig(name="tiny-sound", channels=(8, 16, 16), default_steps=12)


@pytest.fixture(scope="module")
def model() -> SoundDiffusion:
    torch.manual_seed(0)
    return SoundDiffusion(TINY, SoundUNet(TINY), load_embedder().embed)


@pytest.fixture(scope="module")
def judges() -> Judges:
    torch.manual_seed(1)
    return Judges(SoundClassifier(), Clap())


def test_sampling_runs_the_schedule_from_noise_with_either_solver(model: SoundDiffusion) -> None:
    e = model.embed(["a soft chime"])[0]
    for solver in ("ddim", "dpm"):
        steps: list[tuple[int, int]] = []
        r = model.sample("p", e, 1.5, 8, seed=3, solver=solver, on_step=lambda i, n, got=steps: got.append((i, n)))
        assert r.mel.shape == (N_MELS, frames_for(1.5)) and r.steps_run == 8
        assert steps == [(i, 8) for i in range(1, 9)]
        assert bool(torch.isfinite(r.mel).all())
        again = model.sample("p", e, 1.5, 8, seed=3, solver=solver)
        assert torch.equal(r.mel, again.mel)  # one seed, one sound (same process, same kernels)


def test_a_warm_start_runs_only_the_steps_after_its_start(model: SoundDiffusion) -> None:
    e = model.embed(["rain"])[0]
    ref = torch.zeros(N_MELS, frames_for(2.0)) - 0.5
    r = model.sample("p", e, 2.0, 10, seed=1, init=ref, start=7)
    assert r.steps_run == 3
    assert model.sample("p", e, 2.0, 10, seed=1, init=ref, start=9).steps_run == 1
    longer = model.sample("p", e, 3.0, 10, seed=1, init=ref, start=7)  # a short reference is padded
    assert longer.mel.shape[-1] == frames_for(3.0)


def test_a_deep_warm_start_keeps_its_reference_and_a_shallow_one_does_not(model: SoundDiffusion) -> None:
    e = model.embed(["a chime"])[0]
    chime = to_mel(render(SoundSpec("chime", notes=3, duration=2.0), 1), frames_for(2.0))
    rain = to_mel(render(SoundSpec("rain", duration=2.0), 1), frames_for(2.0))
    for solver in ("ddim", "dpm"):
        deep = model.sample("p", e, 2.0, 10, seed=1, solver=solver, init=chime, start=9).mel
        # noised to t = 99 of 1000 (alpha_bar 0.97): one step of even a random UNet stays near the chime
        assert float((deep - chime).abs().mean()) < 0.5 * float((deep - rain).abs().mean())
    shallow = model.sample("p", e, 2.0, 10, seed=1, init=chime, start=1).mel
    assert float((shallow - chime).abs().mean()) > 2 * float((deep - chime).abs().mean())


def test_resuming_a_kept_latent_finishes_the_same_ddim_run(model: SoundDiffusion) -> None:
    e = model.embed(["a beep"])[0]
    full = model.sample("p", e, 1.0, 10, seed=5, keep=(4, 6))
    assert sorted(full.states) == [4, 6]
    resumed = model.resume("p", e, full.states[6], 10, 6, seed=5)
    assert resumed.steps_run == 4
    # DDIM with eta 0 is deterministic: the same four updates on the same latent (float rounding only)
    assert torch.allclose(resumed.mel, full.mel, atol=1e-5)


def test_a_saved_model_loads_and_samples_the_same(model: SoundDiffusion, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    back = SoundDiffusion.load(tmp_path / "m")
    assert back.cfg == TINY
    e = model.embed(["a knock"])[0]
    assert torch.equal(model.sample("p", e, 1.0, 4, seed=2).mel, back.sample("p", e, 1.0, 4, seed=2).mel)
    audio = back.decode(back.sample("p", e, 1.0, 4, seed=2).mel, 1.0, 0)
    assert audio.shape == (SAMPLE_RATE,) and audio.dtype == np.float32


@pytest.mark.parametrize("solver", ["ddim", "dpm"])
def test_soundweaver_serves_a_similar_request_as_a_warm_start(
    model: SoundDiffusion, judges: Judges, solver: Solver
) -> None:
    rt = SoundRuntime(model, judges, SoundWeaver(), clock=lambda: 0.0)
    emb = model.embed(["a soft two-note chime", "a gentle two-note chime"])
    first = rt.serve(SoundJob("a soft two-note chime", emb[0], 2.0, 10, 1, solver))
    assert not first.hit and first.steps_run == 10 and first.reference is None
    second = rt.serve(SoundJob("a gentle two-note chime", emb[1], 2.5, 10, 2, solver))
    assert second.hit and second.steps_run < 10 and second.reference == "a soft two-note chime"
    assert second.solver == solver
    assert second.similarity > 0.75 and len(second.audio) == int(2.5 * SAMPLE_RATE)
    assert rt.policy.cache_entries() == 2


def test_nirvana_resumes_a_cached_latent_through_the_runtime(model: SoundDiffusion, judges: Judges) -> None:
    rt = SoundRuntime(model, judges, Nirvana(), clock=lambda: 0.0)
    emb = model.embed(["wind blowing", "wind blowing"])
    rt.serve(SoundJob("wind blowing", emb[0], 2.0, 10, 1))
    again = rt.serve(SoundJob("wind blowing", emb[1], 1.5, 10, 2))
    assert again.hit and again.steps_run == 5  # identical caption: the deepest level, half the schedule
