"""The denoising samplers a sound request can name: ``ddim`` (DDIM, the model's full schedule of 50
steps) and ``dpm`` (DPM-Solver++ 2M, the fast one).  SoundWeaver warm-starts on either: the
reference is noised to the chosen solver's timestep and only that solver's remaining steps run."""

from __future__ import annotations

from typing import Literal

Solver = Literal["ddim", "dpm"]
