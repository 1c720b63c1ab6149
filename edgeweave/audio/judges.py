"""Offline quality judges for generated sound, trained here (no CLAP or audio weights can be downloaded).

- :class:`SoundClassifier`: a small CNN over the normalized log-mel, mean-pooled over time, naming
  the sound's concept (11 classes).  Its accuracy on generated audio (is the requested concept
  heard?) and its 64-d pooled embedding feed two metrics.
- :class:`Clap`: a CLAP-style contrastive pair (Elizalde et al., 2023), an audio tower of the same
  CNN shape and a linear projection of the caption's MiniLM embedding, trained with the symmetric
  InfoNCE loss over a batch; its cosine is the text-audio score.

Both are trained on the corpus's clips after a Griffin-Lim round trip (mel -> waveform -> mel),
so that the vocoder's artifacts, which every generated sound carries, are in their training
distribution rather than a cue that separates generated from real.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from safetensors.torch import load_file, save_file
from torch import nn

from edgeweave.audio.corpus import CONCEPTS
from edgeweave.audio.mel import to_mel
from edgeweave.errors import ModelFileError

EMBED = 64


class AudioTower(nn.Module):
    """``[batch, N_MELS, frames]`` normalized log-mel -> ``[batch, EMBED]`` (mean and max over time)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout in ((1, 16), (16, 32), (32, EMBED)):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.GELU(), nn.MaxPool2d(2)]
        self.conv = nn.Sequential(*layers)
        self.out = nn.Linear(2 * EMBED, EMBED)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.conv(mel[:, None]).mean(2)  # over frequency: [batch, EMBED, frames / 8]
        return self.out(torch.cat([h.mean(-1), h.amax(-1)], -1))


class SoundClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tower = AudioTower()
        self.head = nn.Linear(EMBED, len(CONCEPTS))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(torch.nn.functional.gelu(self.tower(mel)))


class Clap(nn.Module):
    def __init__(self, text_dim: int = 384) -> None:
        super().__init__()
        self.audio = AudioTower()
        self.text = nn.Linear(text_dim, EMBED)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))

    def pair(self, mel: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.nn.functional.normalize(self.audio(mel), dim=-1)
        t = torch.nn.functional.normalize(self.text(text), dim=-1)
        return a, t


class Judges:
    """The two judges, loaded together (``judges.json`` + safetensors in one directory)."""

    def __init__(self, classifier: SoundClassifier, clap: Clap) -> None:
        self.classifier = classifier.eval()
        self.clap = clap.eval()

    @classmethod
    def load(cls, directory: Path) -> Judges:
        if not (directory / "judges.json").is_file():
            raise ModelFileError(str(directory), "not a judges directory (no judges.json)")
        clf, clap = SoundClassifier(), Clap()
        clf.load_state_dict(load_file(str(directory / "classifier.safetensors")))
        clap.load_state_dict(load_file(str(directory / "clap.safetensors")))
        return cls(clf, clap)

    def save(self, directory: Path, meta: dict[str, float]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_file(self.classifier.state_dict(), str(directory / "classifier.safetensors"))
        save_file(self.clap.state_dict(), str(directory / "clap.safetensors"))
        (directory / "judges.json").write_text(json.dumps(meta, indent=1) + "\n")

    @torch.inference_mode()
    def judge(self, audio: np.ndarray, text_embedding: np.ndarray) -> tuple[int, np.ndarray, float]:
        """(the predicted concept's index, the classifier's embedding, the CLAP text-audio cosine)."""
        mel = to_mel(audio)[None]
        logits = self.classifier(mel)
        emb = self.classifier.tower(mel)[0].numpy()
        a, t = self.clap.pair(mel, torch.from_numpy(np.asarray(text_embedding, dtype=np.float32))[None])
        return int(logits.argmax(-1)), emb, float((a * t).sum())


def train_judges(
    out: Path, embed: Callable[[Sequence[str]], np.ndarray], steps: int = 600, clips: int = 1100, seed: int = 7
) -> Judges:
    """Train both judges on Griffin-Lim round-tripped corpus clips (``clips`` of them)."""
    from edgeweave.audio.mel import GriffinLim
    from edgeweave.audio.pools import DURATIONS, build_pools

    torch.manual_seed(seed)
    pools = build_pools(clips, seed, embed)
    gl = GriffinLim()
    for d, pool in pools.items():  # the vocoder round trip
        pool.mels = torch.stack([to_mel(gl(m, d, i), m.shape[-1]) for i, m in enumerate(pool.mels)])
    clf, clap = SoundClassifier(), Clap()
    opt = torch.optim.AdamW([*clf.parameters(), *clap.parameters()], lr=2e-3, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    batch = 32
    with Progress() as bar:
        task = bar.add_task("training the sound judges", total=steps)
        for _ in range(steps):
            pool = pools[DURATIONS[int(rng.integers(len(DURATIONS)))]]
            idx = torch.from_numpy(rng.integers(len(pool.mels), size=batch))
            mel = pool.mels[idx] + 0.02 * torch.randn_like(pool.mels[idx])
            text = pool.embeddings[idx, torch.from_numpy(rng.integers(pool.embeddings.shape[1], size=batch))]
            ce = torch.nn.functional.cross_entropy(clf(mel), pool.concepts[idx])
            a, t = clap.pair(mel, text)
            logits = a @ t.T * clap.log_scale.exp()
            same = (pool.concepts[idx][:, None] == pool.concepts[idx][None]).float()  # soft targets: same concept
            target = same / same.sum(1, keepdim=True)
            nce = -(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.log_softmax(0)).sum(0).mean()
            loss = ce + nce / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(
                task, advance=1, description=f"training the sound judges ce {ce.item():.3f} nce {nce.item():.3f}"
            )
    judges = Judges(clf, clap)
    judges.save(out, {"steps": steps, "clips": clips, "seed": seed, "final_ce": round(float(ce.detach()), 4)})
    return judges
