"""tLoRA's group trainer (arXiv 2602.07263): many jobs' adapters trained in one mixed batch on a
shared frozen base, each job on exactly the trajectory it would follow alone.

One :meth:`GroupTrainer.step` is one optimizer step of every member job that is not done.  The
step's samples (each job's :func:`~cloud.tlora.jobs.batch_at` at the job's own step) run through
the :class:`~cloud.tlora.supermodel.SuperModel` together; the loss back-propagated is the sum over
jobs of each job's own mean token cross-entropy (reply tokens only, as
:mod:`edgeweave.models.train` encodes them).  Adapters are disjoint, so each job's gradient is
the gradient of its own loss: its solo gradient.  Then per job: gradient-norm clipping, the job's
learning rate from :func:`~cloud.tlora.jobs.lr_at` at its own step, its own AdamW step.

Nano-batches (``step(nano_batches=N)``): the samples are split by
:func:`cloud.tlora.nano.split` into N runs of similar length and balanced rank-aware cost, whole
samples each, each padded only to its own longest sample;
each nano-batch's summed token losses are back-propagated into the accumulated gradients, which
are divided by each job's token count of the whole step once all nano-batches ran, so the step
equals the un-split one (up to float summation order).  What overlaps on CPU: while nano-batch k
runs forward and backward (torch's kernels release the GIL), a background thread tokenizes and
pads nano-batch k+1 (:func:`edgeweave.models.train.make_batch`).

Jobs join and leave between steps (:meth:`add`, :meth:`remove`) and resume from a
:class:`JobState` (adapter, optimizer state, step), which :meth:`JobState.save` writes as one
atomic file.
"""

from __future__ import annotations

import copy
import pickle
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cloud.tlora.jobs import JobPlan, batch_at, lr_at
from cloud.tlora.nano import lora_cost_factor, split
from cloud.tlora.supermodel import JobAdapter, SuperModel
from edgeweave.data.smarthome import Example
from edgeweave.errors import ModelFileError
from edgeweave.fileio import atomic_output
from edgeweave.models.llama import Transformer
from edgeweave.models.lora import LoraAdapter, LoraConfig, module_paths
from edgeweave.models.tokenizer import ByteTokenizer
from edgeweave.models.train import IGNORE, encode_example, make_batch
from kernels.multi_lora import Impl

# the optimizer every path (group, our solo, PEFT's solo) uses: AdamW with these settings, the
# gradient norm of each job's adapter clipped to CLIP_NORM
BETAS = (0.9, 0.999)
EPS = 1e-8
WEIGHT_DECAY = 0.0
CLIP_NORM = 1.0
STATE_FILE = "job_state.pt"


def make_optimizer(params: Sequence[torch.nn.Parameter], plan: JobPlan) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=plan.learning_rate, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)


def clip_and_step(params: Sequence[torch.nn.Parameter], opt: torch.optim.Optimizer, lr: float) -> None:
    """One job's update once its gradients are in: clip, set the step's lr, AdamW, clear."""
    torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
    for group in opt.param_groups:
        group["lr"] = lr
    opt.step()
    opt.zero_grad(set_to_none=True)


@dataclass(frozen=True)
class JobLoss:
    job_id: str
    loss: float  # the job's mean token loss at this step (before its update)
    samples: int
    tokens: int  # real (unpadded) input tokens


@dataclass(frozen=True)
class StepReport:
    seconds: float
    losses: tuple[JobLoss, ...]
    nano_batches: int


@dataclass
class JobState:
    """Everything to resume a job elsewhere: its adapter, optimizer state and step."""

    plan: JobPlan
    step: int
    adapter: LoraAdapter
    optimizer: dict  # torch optimizer state_dict

    def save(self, directory: Path) -> None:
        """One file, written atomically: a crash leaves the previous checkpoint intact."""
        payload = {
            "job_id": self.plan.job_id,
            "step": self.step,
            "lora": self.adapter.config.model_dump(mode="json"),
            "base_model": self.adapter.base_model,
            "weights": {path: [a.detach().cpu(), b.detach().cpu()] for path, (a, b) in self.adapter.weights.items()},
            "optimizer": self.optimizer,
        }
        with atomic_output(Path(directory) / STATE_FILE) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, directory: Path, plan: JobPlan) -> JobState:
        file = Path(directory) / STATE_FILE
        if not file.is_file():
            raise ModelFileError(str(file), "no tLoRA job checkpoint here")
        try:
            raw = torch.load(file, weights_only=True)
            lora = LoraConfig.model_validate(raw["lora"])
            weights = {path: (a, b) for path, (a, b) in raw["weights"].items()}
            job_id, step, optimizer, base_model = raw["job_id"], int(raw["step"]), raw["optimizer"], raw["base_model"]
        except (OSError, RuntimeError, ValueError, KeyError, TypeError, pickle.UnpicklingError) as e:
            raise ModelFileError(str(file), f"unreadable job checkpoint ({e})") from None
        if job_id != plan.job_id or lora != plan.lora:
            raise ModelFileError(
                str(file), f"checkpoint of job {job_id!r} ({lora}) does not match plan {plan.job_id!r} ({plan.lora})"
            )
        if not 0 <= step <= plan.total_steps:
            raise ModelFileError(str(file), f"checkpoint step {step} outside the plan's [0, {plan.total_steps}]")
        return cls(plan, step, LoraAdapter(lora, base_model, weights), optimizer)


@dataclass
class _Member:
    plan: JobPlan
    adapter: JobAdapter
    optimizer: torch.optim.AdamW
    step: int
    cost_factor: float  # rank-aware cost of one token (nano.lora_cost_factor)

    @property
    def done(self) -> bool:
        return self.step >= self.plan.total_steps


class GroupTrainer:
    """Member jobs trained together on one frozen, shared base (see the module docstring)."""

    def __init__(self, base: Transformer, impl: Impl = "segmented") -> None:
        self.model = SuperModel(base, impl)
        self.tokenizer = ByteTokenizer()
        # the ByteTokenizer spends one token per UTF-8 byte: a sample's length is the template's
        # tokens plus its bytes, known without tokenizing (the collation thread does that)
        self._template_tokens = len(encode_example(self.tokenizer, Example("", ""))[0])
        self._members: dict[str, _Member] = {}

    @property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(self._members)

    def add(self, plan: JobPlan, resume: JobState | None = None) -> None:
        """Join ``plan`` (fresh: PEFT's init from ``plan.seed``; or from ``resume``)."""
        if plan.job_id in self._members:
            raise ValueError(f"job {plan.job_id!r} is already in this group")
        cfg = self.model.config
        if resume is None:
            adapter, step = LoraAdapter.init(cfg, plan.lora, plan.base_model, plan.seed), 0
        else:
            if resume.plan.job_id != plan.job_id or resume.adapter.config != plan.lora:
                raise ValueError(f"resume state of {resume.plan.job_id!r} does not match plan {plan.job_id!r}")
            adapter, step = resume.adapter, resume.step
        adapter.check_fits(cfg)
        # parameters in module_paths order (A, B per module): the optimizer state's indices rely on it
        ordered = LoraAdapter(
            adapter.config, adapter.base_model, {p: adapter.weights[p] for p in module_paths(cfg, plan.lora)}
        )
        job = JobAdapter.of(ordered)
        opt = make_optimizer(job.parameters(), plan)
        if resume is not None:
            opt.load_state_dict(copy.deepcopy(resume.optimizer))
        self.model.attach(plan.lora)
        self._members[plan.job_id] = _Member(plan, job, opt, step, lora_cost_factor(cfg, plan.lora))

    def _member(self, job_id: str) -> _Member:
        try:
            return self._members[job_id]
        except KeyError:
            raise KeyError(f"no job {job_id!r} in this group") from None

    def state(self, job_id: str) -> JobState:
        m = self._member(job_id)
        return JobState(m.plan, m.step, m.adapter.snapshot(), copy.deepcopy(m.optimizer.state_dict()))

    def remove(self, job_id: str) -> JobState:
        state = self.state(job_id)
        del self._members[job_id]
        return state

    def done(self, job_id: str) -> bool:
        return self._member(job_id).done

    def step(self, nano_batches: int = 1) -> StepReport:
        """One optimizer step for every member not done (an empty report when none is left)."""
        if nano_batches < 1:
            raise ValueError(f"nano_batches must be at least 1 (got {nano_batches})")
        start = time.perf_counter()
        active = [m for m in self._members.values() if not m.done]
        job_of: list[int] = []  # the step's samples, ordered by job
        samples: list[Example] = []
        for j, m in enumerate(active):
            batch = batch_at(m.plan, m.step)
            samples += batch
            job_of += [j] * len(batch)
        max_len = self.model.config.max_seq_len
        lengths = [
            min(max_len, self._template_tokens + len(ex.prompt.encode()) + len(ex.target.encode())) for ex in samples
        ]
        parts = split(lengths, [active[j].cost_factor for j in job_of], nano_batches)
        loss_sum = [0.0] * len(active)
        label_tokens = [0] * len(active)
        input_tokens = [0] * len(active)
        adapters = [m.adapter for m in active]

        def collate(k: int) -> tuple[torch.Tensor, torch.Tensor]:
            return make_batch(self.tokenizer, [samples[i] for i in parts[k]], max_len)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future | None = pool.submit(collate, 0) if parts else None
            for k, part in enumerate(parts):
                x, y = pending.result()
                pending = pool.submit(collate, k + 1) if k + 1 < len(parts) else None
                rows = [job_of[i] for i in part]
                logits = self.model.forward(x, rows, adapters)
                token_loss = F.cross_entropy(
                    logits.view(-1, logits.shape[-1]), y.view(-1), ignore_index=IGNORE, reduction="none"
                ).view(y.shape)
                # un-normalised: each job's sum is divided by its whole-step token count below
                token_loss.sum().backward()
                per_sample = token_loss.detach().sum(1).tolist()
                labels = (y != IGNORE).sum(1).tolist()
                real = (x != self.tokenizer.PAD).sum(1).tolist()
                for r, j in enumerate(rows):
                    loss_sum[j] += per_sample[r]
                    label_tokens[j] += labels[r]
                    input_tokens[j] += real[r]
        losses = []
        for j, m in enumerate(active):
            n = max(1, label_tokens[j])  # a batch whose replies were all truncated away trains nothing
            params = m.adapter.parameters()
            for p in params:
                if p.grad is not None:
                    p.grad.div_(n)
            clip_and_step(params, m.optimizer, lr_at(m.plan, m.step))
            m.step += 1
            losses.append(JobLoss(m.plan.job_id, loss_sum[j] / n, job_of.count(j), input_tokens[j]))
        return StepReport(time.perf_counter() - start, tuple(losses), len(parts))
