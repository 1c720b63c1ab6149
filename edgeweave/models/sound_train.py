"""Training the text-to-audio model on the procedural home-sound corpus (:mod:`edgeweave.audio.corpus`).

Clips come from :func:`edgeweave.audio.pools.build_pools` (one duration per batch, three captions
per clip embedded by MiniLM); a batch is one duration, a timestep is drawn uniformly, and the UNet learns
v-prediction (diffusers' ``DDPMScheduler.get_velocity``) with AdamW.  10% of captions are replaced
by the zero embedding, the unconditional branch of classifier-free guidance.  Deterministic for a
seed on one machine (torch's CPU kernels may differ across CPUs in the last bits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from edgeweave.audio.pools import CAPTIONS_PER_CLIP, DURATIONS, build_pools
from edgeweave.models.sound import TRAIN_TIMESTEPS, SoundDiffusion, SoundModelConfig, SoundUNet


def train_sound_model(
    out: Path,
    steps: int = 2000,
    batch: int = 16,
    clips: int = 2000,
    seed: int = 0,
    lr: float = 1e-3,
    cfg: SoundModelConfig | None = None,
) -> SoundDiffusion:
    from diffusers import DDPMScheduler

    from edgeweave.models.embedder import load_embedder

    torch.manual_seed(seed)
    cfg = cfg or SoundModelConfig()
    embed = load_embedder(cfg.embedder).embed
    pools = build_pools(clips, seed, embed)
    unet = SoundUNet(cfg)
    sched = DDPMScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"
    )
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    lr_at = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    rng = np.random.default_rng(seed + 1)
    ema = 0.0
    unet.train()
    with Progress() as bar:
        task = bar.add_task(f"training {cfg.name}", total=steps)
        for step in range(steps):
            pool = pools[DURATIONS[int(rng.integers(len(DURATIONS)))]]
            idx = torch.from_numpy(rng.integers(len(pool.mels), size=batch))
            which = torch.from_numpy(rng.integers(CAPTIONS_PER_CLIP, size=batch))
            x0 = pool.mels[idx][:, None]
            cond = pool.embeddings[idx, which].clone()
            cond[torch.from_numpy(rng.random(batch) < 0.1)] = 0.0
            noise = torch.randn_like(x0)
            t = torch.randint(0, TRAIN_TIMESTEPS, (batch,))
            xt = sched.add_noise(x0, noise, t)
            pred = unet(xt, t, cond)
            loss = torch.nn.functional.mse_loss(pred, sched.get_velocity(x0, noise, t))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            lr_at.step()
            ema = loss.item() if step == 0 else 0.98 * ema + 0.02 * loss.item()
            bar.update(task, advance=1, description=f"training {cfg.name} loss {ema:.4f}")
    final = cfg.model_copy(update={"train_steps": steps, "train_loss": round(ema, 5)})
    model = SoundDiffusion(final, unet, embed)
    model.save(out)
    return model


def main(argv: list[str] | None = None) -> int:
    """``python -m edgeweave.models.sound_train``: train the sound model and its judges."""
    import argparse

    from edgeweave.models.embedder import load_embedder
    from edgeweave.models.registry import checkpoint_dir

    ap = argparse.ArgumentParser(description="Train weave-sound and weave-sound-judges on the home-sound corpus")
    ap.add_argument("--out", type=Path, default=checkpoint_dir("weave-sound"))
    ap.add_argument("--judges-out", type=Path, default=checkpoint_dir("weave-sound-judges"))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--judge-steps", type=int, default=600)
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--only", choices=("model", "judges"), default=None)
    a = ap.parse_args(argv)
    if a.steps < 1 or a.judge_steps < 1 or a.clips < 10:
        ap.error("--steps and --judge-steps must be at least 1 and --clips at least 10")
    if a.only != "judges":
        train_sound_model(a.out, steps=a.steps, clips=a.clips)
    if a.only != "model":
        from edgeweave.audio.judges import train_judges

        train_judges(a.judges_out, load_embedder("all-minilm-l6-v2").embed, steps=a.judge_steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
