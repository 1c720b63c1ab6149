"""Tier parity on a real model: SmolLM2-135M-Instruct served by the device (llama.cpp on the GGUF) and
by the cloud (the same GGUF dequantized into the torch engine), and what their difference means for
migrating an answer between them mid-generation (DiSCo).

Per prompt (country-capital questions and smart-home commands, the model's own chat template):

- free-running: the greedy answer (``MAX_TOKENS``) on each tier; identical or not, and the length of
  their common prefix;
- teacher-forced along the device's answer: both tiers' logits at every generated position (llama.cpp
  through the device backend, torch through the cloud engine's model), the KL divergence of the cloud's
  next-token distribution from the device's, top-1 agreement, and the device's top-two margin where
  they agree and where they do not;
- migration: an answer moved from device to cloud after k tokens (the cloud continues from the
  device's tokens, as DiSCo's resume does) is the device's own answer iff the cloud's argmax equals the
  device's token at every position from k on; the share of answers for which that holds, per k.

Headline keys: ``greedy_identical_fraction``, ``top1_agreement``, ``kl_median``, ``kl_p99``,
``max_disagreement_margin`` (the largest device top-two margin at which the tiers' argmaxes differed:
above it greedy decoding was identical on every position measured), ``migration_identical_k8``.

    python -m benchmarks.tier_parity [--quick]
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.results_io import RESULTS, parser, save_result
from cloud.engine.engine import LLMEngine
from device.backends.llamacpp_backend import LlamaCppBackend
from edgeweave.config import EngineOptions
from edgeweave.data.uq_questions import capitals, households
from edgeweave.errors import ModelFileError
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.bundled import SMOLLM2, smollm2_gguf
from edgeweave.models.tokenizer import ChatMessage

MAX_TOKENS = 32
MIGRATION_KS = (1, 2, 4, 8, 16, 24)


@dataclass(frozen=True)
class PromptParity:
    prompt: str
    device_text: str
    identical: bool
    common_prefix: int  # tokens
    generated: int  # device answer length (tokens)
    kl: tuple[float, ...]  # per generated position
    agree: tuple[bool, ...]
    margin: tuple[float, ...]  # device top-two logit margin per position

    def migration_identical(self, k: int) -> bool:
        """Moved to the cloud after k device tokens, the answer is the device's own."""
        return all(self.agree[k:])


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def measure(device: LlamaCppBackend, cloud: LLMEngine, prompts: list[str]) -> list[PromptParity]:
    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0)
    ids = [device.tokenizer.render_chat([ChatMessage("user", p)]) for p in prompts]
    cloud_answers = cloud.generate(ids, params)
    out = []
    for prompt, prompt_ids, cloud_tokens in zip(prompts, ids, cloud_answers, strict=True):
        dev_tokens = list(device.generate(prompt_ids, params).token_ids)
        n = len(dev_tokens)
        full = [*prompt_ids, *dev_tokens]
        dev_logits = device.logits(full)[len(prompt_ids) - 1 : len(full) - 1]
        with torch.no_grad():
            cloud_logits = cloud.model(torch.tensor([full]))[0, len(prompt_ids) - 1 : len(full) - 1].numpy()
        p, q = _log_softmax(dev_logits), _log_softmax(cloud_logits)
        top2 = np.sort(dev_logits, -1)[:, -2:]
        pairs = enumerate(zip(dev_tokens, cloud_tokens, strict=False))  # the shorter answer bounds the prefix
        prefix = next((i for i, (a, b) in pairs if a != b), min(n, len(cloud_tokens)))
        out.append(
            PromptParity(
                prompt=prompt,
                device_text=device.tokenizer.decode(dev_tokens),
                identical=dev_tokens == list(cloud_tokens),
                common_prefix=prefix,
                generated=n,
                kl=tuple(float(x) for x in (np.exp(p) * (p - q)).sum(-1)),
                agree=tuple(bool(x) for x in cloud_logits.argmax(-1) == np.asarray(dev_tokens)),
                margin=tuple(float(x) for x in top2[:, 1] - top2[:, 0]),
            )
        )
    return out


def summarize(rows: list[PromptParity]) -> dict[str, float]:
    kl = np.concatenate([r.kl for r in rows])
    agree = np.concatenate([r.agree for r in rows]).astype(bool)
    margin = np.concatenate([r.margin for r in rows])
    summary = {
        "prompts": float(len(rows)),
        "positions": float(len(kl)),
        "greedy_identical_fraction": float(np.mean([r.identical for r in rows])),
        "common_prefix_median_tokens": float(np.median([r.common_prefix for r in rows])),
        "top1_agreement": float(agree.mean()),
        "kl_median": float(np.median(kl)),
        "kl_p99": float(np.percentile(kl, 99)),
        "max_disagreement_margin": float(margin[~agree].max()) if (~agree).any() else 0.0,
        "median_margin": float(np.median(margin)),
    }
    for k in MIGRATION_KS:
        eligible = [r for r in rows if r.generated > k]
        summary[f"migration_identical_k{k}"] = (
            float(np.mean([r.migration_identical(k) for r in eligible])) if eligible else float("nan")
        )
    return summary


def plot(rows: list[PromptParity], summary: dict[str, float], path: Path, command: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agree = np.concatenate([r.agree for r in rows]).astype(bool)
    margin = np.concatenate([r.margin for r in rows])
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    bins = np.linspace(0, max(float(margin.max()), 1.0), 30)
    ax[0].hist(margin[agree], bins, alpha=0.7, label="argmax agrees")
    ax[0].hist(margin[~agree], bins, alpha=0.9, label="argmax differs")
    ax[0].set(title="device top-two margin per position", xlabel="logits", ylabel="positions", yscale="log")
    ax[0].legend(fontsize=8)
    ax[1].hist(np.concatenate([r.kl for r in rows]), 40)
    ax[1].set(title="KL(device || cloud) per position", xlabel="nats", ylabel="positions", yscale="log")
    ks = list(MIGRATION_KS)
    ax[2].plot(ks, [summary[f"migration_identical_k{k}"] for k in ks], "o-")
    ax[2].set(title="moved after k tokens: answer unchanged", xlabel="k", ylabel="share of answers", ylim=(0, 1.05))
    fig.suptitle(f"SmolLM2-135M-Instruct Q4_1: llama.cpp (device) vs torch (cloud) — {command}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import track

    args = parser(__doc__ or "", "12 prompts instead of 60").parse_args(argv)
    console = Console()
    try:
        path = smollm2_gguf()
    except ModelFileError as e:
        print(e, file=sys.stderr)
        return 2
    n = 12 if args.quick else 60
    prompts = [q.prompt for q in capitals(n // 2)] + [q.prompt for q in households(n - n // 2)]
    started = time.time()
    device = LlamaCppBackend(path)
    cloud = LLMEngine.load(SMOLLM2, EngineOptions(kv_cache_mb=64))
    rows: list[PromptParity] = []
    for i in track(range(0, len(prompts), 6), description="prompts", console=console):
        rows += measure(device, cloud, prompts[i : i + 6])
    device.close()
    summary = summarize(rows) | {"seconds": time.time() - started}
    for key, value in summary.items():
        console.print(f"{key:32s} {value:.4g}")
    command = f"python -m benchmarks.tier_parity{' --quick' if args.quick else ''}"
    save_result("tier_parity", args.quick, summary, prompts=[r.__dict__ for r in rows])
    plot(rows, summary, RESULTS / "tier_parity.png", command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
