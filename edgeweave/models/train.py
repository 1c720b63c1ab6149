"""Train a weave-home model on the generated smart-home corpus.

Next-token cross-entropy on the assistant turn only (the command and chat
template are context), AdamW with linear warm-up and cosine decay, fixed seeds
for the data stream and the initialisation, one torch thread count so the run
is reproducible on a given machine.  Shows a rich progress bar.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgeweave.data.smarthome import Example, examples
from edgeweave.models.config import Preset
from edgeweave.models.llama import Transformer
from edgeweave.models.tokenizer import ByteTokenizer, ChatMessage

IGNORE = -100  # the target id cross-entropy skips (a prompt token, padding)


@dataclass(frozen=True)
class TrainReport:
    steps: int
    final_loss: float
    seconds: float
    parameters: int


def encode_example(tok: ByteTokenizer, ex: Example) -> tuple[list[int], list[int]]:
    """Token ids and labels (loss only on the assistant reply and its end marker)."""
    turns = [ChatMessage(role, content) for role, content in ex.context]  # type: ignore[arg-type]
    prompt = tok.render_chat(turns or [ChatMessage("user", ex.prompt)])
    reply = [*tok.encode(ex.target), tok.END]
    ids = prompt + reply
    labels = [IGNORE] * len(prompt) + reply
    return ids[:-1], labels[1:]


def make_batch(tok: ByteTokenizer, batch: list[Example], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [encode_example(tok, ex) for ex in batch]
    width = min(max_len, max(len(ids) for ids, _ in pairs))
    x = torch.full((len(pairs), width), tok.PAD, dtype=torch.long)
    y = torch.full((len(pairs), width), IGNORE, dtype=torch.long)
    for row, (ids, labels) in enumerate(pairs):
        n = min(width, len(ids))
        x[row, :n] = torch.tensor(ids[:n])
        y[row, :n] = torch.tensor(labels[:n])
    return x, y


def length_bucketed(stream: Iterator[Example], batch_size: int, rng: random.Random) -> Iterator[list[Example]]:
    """Batches of similar length (less padding): sort a pool of 16 batches, shuffle their order."""
    pool_batches = 16
    while True:
        pool = sorted(
            (next(stream) for _ in range(batch_size * pool_batches)), key=lambda e: len(e.prompt) + len(e.target)
        )
        chunks = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
        rng.shuffle(chunks)
        yield from chunks


def lr_at(step: int, total: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    preset: Preset, steps: int | None = None, show_progress: bool = True, corpus: Iterator[Example] | None = None
) -> tuple[Transformer, TrainReport]:
    """``corpus``: the example stream (default: the smart-home corpus's train split)."""
    steps = steps or preset.train_steps
    torch.manual_seed(preset.seed)
    tok = ByteTokenizer()
    model = Transformer(preset.config)
    if preset.init_from is not None:  # fine-tune a committed model of this shape (its context may be longer)
        from edgeweave.models.checkpoint import load_state_dict
        from edgeweave.models.registry import checkpoint_dir

        missing = model.load_state_dict(load_state_dict(checkpoint_dir(preset.init_from)), strict=False).missing_keys
        if [k for k in missing if "rotary" not in k]:
            raise ValueError(f"{preset.init_from} does not fit {preset.name}: missing {missing[:3]}")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=preset.lr, betas=(0.9, 0.95), weight_decay=0.05)
    stream = corpus if corpus is not None else examples(preset.seed, "train")
    batches = length_bucketed(stream, preset.batch_size, random.Random(preset.seed))
    start = time.perf_counter()
    ema = float("nan")
    progress = Progress(
        TextColumn(f"[bold]{preset.name}"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task("train", total=steps, loss=float("nan"))
        for step in range(steps):
            batch = next(batches)
            x, y = make_batch(tok, batch, preset.config.max_seq_len)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, steps, preset.lr)
            logits = model(x)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1), ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ema = loss.item() if math.isnan(ema) else 0.95 * ema + 0.05 * loss.item()
            progress.update(task, advance=1, loss=ema)
    model.eval()
    report = TrainReport(steps, ema, time.perf_counter() - start, model.num_parameters())
    return model, report
