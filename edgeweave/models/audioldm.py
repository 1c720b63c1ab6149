"""A diffusers AudioLDM pipeline from a local directory, served through SoundWeaver's cache.

A user with AudioLDM weights (``cvssp/audioldm-s-full-v2`` saved with ``save_pretrained``, or
any directory of the same layout) names the directory as ``[cloud.soundweaver] model``; nothing is
downloaded (``local_files_only``).  The pipeline's own parts do the work: its CLAP text encoder
conditions the UNet (with classifier-free guidance, as ``AudioLDMPipeline.__call__`` does), its
VAE decodes the latent to a mel spectrogram and its HiFi-GAN vocoder makes the waveform, resampled
to 16 kHz when the vocoder's rate differs.  SoundWeaver sees the VAE latent with time last (its
channels x frequency bins as rows), so the selector aligns it like our own mel, and the warm start
noises it with the pipeline's scheduler; the cache's keys are MiniLM caption embeddings, as for
our model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgeweave.audio.solvers import Solver
from edgeweave.errors import ModelFileError
from edgeweave.models.sound import LatentSoundModel

SAMPLE_RATE = 16_000


class AudioLdmSound(LatentSoundModel):
    silence = 0.0  # the latent's mean: padding a short reference adds no structure
    rows_are_mel = False  # VAE latent channels

    def __init__(self, pipe, name: str, guidance: float = 2.5, default_steps: int = 50) -> None:  # type: ignore[no-untyped-def]
        from edgeweave.models.embedder import load_embedder

        super().__init__()
        self.pipe = pipe
        self.name = name
        self.guidance = guidance
        self.default_steps = default_steps
        self._embed = load_embedder().embed
        self._channels = int(pipe.unet.config.in_channels)
        self._scale = int(pipe.vae_scale_factor)
        self._bins = int(pipe.vocoder.config.model_in_dim) // self._scale
        rates = pipe.vocoder.config.upsample_rates
        self._seconds_per_frame = float(np.prod(rates)) / pipe.vocoder.config.sampling_rate

    @classmethod
    def load(cls, directory: Path) -> AudioLdmSound:
        from diffusers import AudioLDMPipeline

        try:
            pipe = AudioLDMPipeline.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelFileError(str(directory), f"not an AudioLDM pipeline directory ({e})") from None
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, directory.name)

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        return self._embed(prompts)

    def scheduler(self, solver: Solver):  # type: ignore[no-untyped-def]
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        kind = DDIMScheduler if solver == "ddim" else DPMSolverMultistepScheduler
        return kind.from_config(self.pipe.scheduler.config)

    def latent_shape(self, seconds: float) -> tuple[int, ...]:
        height = int(np.ceil(seconds / self._seconds_per_frame / self._scale)) * self._scale
        return (1, self._channels, height // self._scale, self._bins)

    def frames(self, seconds: float) -> int:
        return self.latent_shape(seconds)[2]

    def condition(self, prompt: str, embedding: np.ndarray) -> torch.Tensor:
        return self.pipe._encode_prompt(prompt, torch.device("cpu"), 1, self.guidance > 1.0)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: object) -> torch.Tensor:
        assert isinstance(cond, torch.Tensor)
        if self.guidance <= 1.0:
            return self.pipe.unet(x, t, encoder_hidden_states=None, class_labels=cond).sample
        out = self.pipe.unet(torch.cat([x, x]), t, encoder_hidden_states=None, class_labels=cond).sample
        uncond, text = out.chunk(2)  # _encode_prompt puts the negative (empty) prompt first
        return uncond + self.guidance * (text - uncond)

    def to_rows(self, latent: torch.Tensor) -> torch.Tensor:
        c, frames, bins = latent.shape[1:]
        return latent[0].permute(0, 2, 1).reshape(c * bins, frames)

    def from_rows(self, rows: torch.Tensor) -> torch.Tensor:
        return rows.reshape(self._channels, self._bins, rows.shape[-1]).permute(0, 2, 1)[None]

    def decode(self, rows: torch.Tensor, seconds: float, seed: int) -> np.ndarray:
        with torch.inference_mode():
            mel = self.pipe.decode_latents(self.from_rows(rows))
            audio = self.pipe.mel_spectrogram_to_waveform(mel)[0].numpy()
        rate = int(self.pipe.vocoder.config.sampling_rate)
        if rate != SAMPLE_RATE:
            import librosa

            audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
        n = int(round(seconds * SAMPLE_RATE))
        return np.pad(audio[:n], (0, max(n - len(audio), 0))).astype(np.float32)
