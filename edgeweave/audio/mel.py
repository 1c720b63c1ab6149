"""The sound model's representation: normalized log-mel spectrograms, and the vocoder back.

The diffusion model works on a ``[n_mels, frames]`` image of log-mel energies scaled to about
[-1, 1] (a mel-spectrogram diffusion, like Riffusion's and AudioLDM's, without the latent
autoencoder: at 40 mel bands and 25 frames a second the image is already small).  The vocoder is
Griffin-Lim (librosa's fast variant, momentum 0.99) on the mel's pseudo-inverse: it needs no
training, is deterministic given its seed, and costs every serving method the same per second of
audio (a fixed cost that shrinks every speed-up ratio, and favours none); its phase artifacts are
heard, but every quality metric re-extracts the mel from the waveform, so they count equally
against every method too.  A small
trained vocoder would sound better; the repository's CPU training budget went to the diffusion
model instead.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from edgeweave.audio.corpus import SAMPLE_RATE

N_MELS = 40
N_FFT = 1024
HOP = 640  # 40 ms: 25 frames a second (coarse, but the CPU-trained UNet's cost is per frame)
FRAMES_PER_SECOND = SAMPLE_RATE / HOP
_LOG_FLOOR = 1e-5
LOG_LO, LOG_HI = float(np.log(_LOG_FLOOR)), 4.0  # the log-mel range mapped to [-1, 1]
FRAME_MULTIPLE = 4  # the UNet halves the frames twice


@functools.cache
def _mel_basis() -> np.ndarray:
    import librosa

    return np.asarray(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=30.0, fmax=8000.0))


@functools.cache
def _mel_torch() -> torch.Tensor:
    return torch.from_numpy(_mel_basis()).float()


@functools.cache
def _window() -> torch.Tensor:
    return torch.hann_window(N_FFT)


def frames_for(seconds: float) -> int:
    """Frames of a clip of ``seconds`` seconds, rounded up to what the UNet takes."""
    n = int(np.ceil(seconds * FRAMES_PER_SECOND))
    return -(-n // FRAME_MULTIPLE) * FRAME_MULTIPLE


def to_mel(audio: np.ndarray | torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """Normalized log-mel of ``audio`` (``[samples]`` or ``[batch, samples]``): ``[.., N_MELS, frames]``,
    cropped or padded (with silence) to ``frames`` when given."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    spec = torch.stft(x, N_FFT, HOP, window=_window(), center=True, return_complex=True).abs() ** 2
    mel = torch.log(torch.clamp(_mel_torch() @ spec, min=_LOG_FLOOR))
    norm = (mel - LOG_LO) / (LOG_HI - LOG_LO) * 2 - 1
    if frames is not None:
        have = norm.shape[-1]
        if have >= frames:
            norm = norm[..., :frames]
        else:
            norm = torch.nn.functional.pad(norm, (0, frames - have), value=-1.0)
    return norm.clamp(-1.0, 1.0)


@dataclass(frozen=True)
class GriffinLim:
    """The vocoder: normalized log-mel -> waveform."""

    iterations: int = 24

    def __call__(self, mel: torch.Tensor | np.ndarray, seconds: float, seed: int = 0) -> np.ndarray:
        import librosa

        m = torch.as_tensor(mel, dtype=torch.float32).clamp(-1, 1).numpy()
        power = np.exp((m + 1) / 2 * (LOG_HI - LOG_LO) + LOG_LO) - _LOG_FLOOR
        linear = np.maximum(np.linalg.pinv(_mel_basis()) @ np.maximum(power, 0.0), 0.0)
        samples = int(round(seconds * SAMPLE_RATE))
        frames = samples // HOP + 1  # what librosa's STFT of `samples` has: the UNet's padding goes (or one repeats)
        linear = np.pad(linear, ((0, 0), (0, max(frames - linear.shape[-1], 0))), mode="edge")[:, :frames]
        audio = librosa.griffinlim(
            np.sqrt(linear), n_iter=self.iterations, hop_length=HOP, n_fft=N_FFT,
            random_state=np.random.default_rng(seed), length=samples,
        )  # fmt: skip
        peak = float(np.max(np.abs(audio))) or 1.0
        return (audio / max(peak, 1.0)).astype(np.float32)
