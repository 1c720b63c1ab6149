"""A tLoRA job trained alone, two ways: our group path with one member, and the real PEFT library.

tLoRA (arXiv 2602.07263) promises each job in a group the result it would get alone; these are
the "alone" it is held to.  :func:`train_alone_peft` is also the per-job baseline of the
benchmark (one PEFT run after another, or several with the cores split by ``threads``).  PEFT
cannot train a batch that mixes adapters (huggingface/peft#1558: ``adapter_names=`` raises in
training mode), which is why the group path is ours and PEFT the oracle of one job.

Both start from the same :meth:`LoraAdapter.init` weights (PEFT's own initialisation, seeded by
the plan), read the same batches (:func:`~cloud.tlora.jobs.batch_at`), and use the same AdamW,
learning-rate schedule and clipping (:func:`~cloud.tlora.trainer.clip_and_step`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cloud.tlora.jobs import JobPlan, batch_at, lr_at
from cloud.tlora.trainer import GroupTrainer, clip_and_step, make_optimizer
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.llama import Transformer
from edgeweave.models.lora import PEFT_PREFIX, LoraAdapter
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.tokenizer import ByteTokenizer
from edgeweave.models.train import IGNORE, make_batch
from kernels.multi_lora import Impl

PEFT_ADAPTER = "default"  # the name PEFT gives the one adapter get_peft_model creates


@dataclass(frozen=True)
class SoloRun:
    losses: tuple[float, ...]  # the job's mean token loss at each step
    adapter: LoraAdapter  # the trained adapter
    seconds: float


def load_base(base_dir: str | Path) -> Transformer:
    """The frozen base a job trains on (fp32): a model name or a checkpoint directory."""
    return load_checkpoint(resolve_checkpoint(base_dir))


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"threads must be at least 1 (got {n})")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_alone(base_dir: str | Path, plan: JobPlan, impl: Impl = "segmented", threads: int | None = None) -> SoloRun:
    """``plan`` trained on our path, a GroupTrainer with it as the only member."""
    with _threads(threads):
        trainer = GroupTrainer(load_base(base_dir), impl)
        trainer.add(plan)
        start = time.perf_counter()
        losses = []
        while not trainer.done(plan.job_id):
            losses.append(trainer.step().losses[0].loss)
        seconds = time.perf_counter() - start
        return SoloRun(tuple(losses), trainer.state(plan.job_id).adapter, seconds)


def train_alone_peft(base_dir: str | Path, plan: JobPlan, threads: int | None = None) -> SoloRun:
    """``plan`` trained with the real PEFT library: ``get_peft_model`` on our Transformer."""
    import peft

    with _threads(threads):
        base = load_base(base_dir)
        init = LoraAdapter.init(base.config, plan.lora, plan.base_model, plan.seed)
        model = peft.get_peft_model(
            base,
            peft.LoraConfig(
                r=plan.lora.rank,
                lora_alpha=plan.lora.alpha,
                target_modules=list(plan.lora.target_modules),
                lora_dropout=0.0,
            ),
        )
        params = []
        with torch.no_grad():
            for path, (a, b) in init.weights.items():
                layer = model.get_submodule(PEFT_PREFIX + path)
                pa, pb = layer.lora_A[PEFT_ADAPTER].weight, layer.lora_B[PEFT_ADAPTER].weight
                pa.copy_(a)
                pb.copy_(b)
                params += [pa, pb]
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        if trainable != {id(p) for p in params}:
            raise RuntimeError("PEFT's trainable parameters are not exactly the adapter's lora_A/lora_B")
        model.train()
        opt = make_optimizer(params, plan)
        tok = ByteTokenizer()
        losses = []
        start = time.perf_counter()
        for step in range(plan.total_steps):
            x, y = make_batch(tok, batch_at(plan, step), base.config.max_seq_len)
            logits = model(x)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1), ignore_index=IGNORE)
            loss.backward()
            clip_and_step(params, opt, lr_at(plan, step))
            losses.append(loss.item())
        seconds = time.perf_counter() - start
        weights = {
            path: (params[2 * i].detach().clone(), params[2 * i + 1].detach().clone())
            for i, path in enumerate(init.weights)
        }
        return SoloRun(tuple(losses), LoraAdapter(plan.lora, plan.base_model, weights), seconds)
