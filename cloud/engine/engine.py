"""The continuous-batching LLM engine (the mechanism; the order is the policy's).

Each :meth:`LLMEngine.step` is one iteration: the pure scheduler picks which
sequences compute how many tokens (decodes and prefill chunks together), the
engine applies its preemptions (recompute: drop the blocks and prefill again
later, the prefix cache often keeping them; swap: copy the blocks to host
memory and back), admits sequences (reusing cached prefix blocks), runs the
model once, samples every sequence whose context is complete and applies the
stop conditions.  A request that asks for logprobs gets, with each token,
its log-probability from the step's raw logits (before temperature:
:mod:`edgeweave.generation.logprobs`).  Requests of different LoRA adapters share each
iteration's batch (:mod:`cloud.engine.lora`).  Not thread-safe, except :meth:`LLMEngine.add_adapter`:
:mod:`cloud.engine.async_engine` owns it from one thread.

The engine is handed its scheduling policy (any :class:`~cloud.engine.scheduler.Policy`;
FCFS when none is given): it never resolves ``EngineOptions.policy`` by name, the
serving layer does (:mod:`cloud.policies`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cloud.engine.attention import make_attention
from cloud.engine.blocks import BlockManager
from cloud.engine.kv_cache import PagedKVCache, bytes_per_block
from cloud.engine.lora import AdapterSet, default_impl
from cloud.engine.runner import ModelRunner
from cloud.engine.scheduler import FCFS, Budget, Policy, schedule
from cloud.engine.sequence import SeqState, Sequence
from cloud.engine.stats import EngineStats, StepSample
from edgeweave.config import EngineOptions
from edgeweave.errors import UsageError
from edgeweave.generation.constrained import check_spec, sampler_for
from edgeweave.generation.logprobs import TokenLogprob, token_logprob
from edgeweave.generation.sampling import SamplingParams
from edgeweave.generation.stopping import Continuation, FinishReason
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.gguf_checkpoint import load_gguf
from edgeweave.models.gguf_layout import is_gguf
from edgeweave.models.hf_tokenizer import load_tokenizer
from edgeweave.models.llama import Transformer
from edgeweave.models.lora import LoraAdapter
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.tokenizer import Tokenizer
from edgeweave.wire.slo import AnySlo


@dataclass(frozen=True)
class TokenOutput:
    """One sampled token of one request."""

    request_id: str
    token_id: int
    text: str
    index: int  # among the request's new tokens
    finish_reason: FinishReason | None
    prompt_tokens: int
    time_s: float
    logprob: TokenLogprob | None = None  # when the request's sampling asked for logprobs


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


class LLMEngine:
    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        options: EngineOptions | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.options = o = options or EngineOptions()
        self.device = _device(o.device)
        dtype = _dtype(o.dtype, self.device)
        self.model = model.to(self.device, dtype).eval()
        self.tokenizer = tokenizer
        cfg = model.config
        self.context_length = cfg.max_seq_len
        per_block = bytes_per_block(cfg, o.block_size, dtype)
        num_blocks = int(o.kv_cache_mb * 2**20 // per_block)
        if num_blocks < 1:
            raise UsageError("kv_cache_mb", f"{o.kv_cache_mb} MiB holds no block of {per_block} bytes")
        self.swap_blocks = int(o.swap_space_mb * 2**20 // per_block) if o.preemption == "swap" else 0
        self.blocks = BlockManager(num_blocks, o.block_size, o.prefix_caching)
        self.cache = PagedKVCache(cfg, num_blocks, o.block_size, dtype, self.device)
        attention = make_attention(
            o.attention, o.block_size, cfg.head_dim, cfg.n_heads // cfg.n_kv_heads, cfg.n_kv_heads, self.device
        )
        self._lora = AdapterSet(self.model, default_impl(self.device))
        self.runner = ModelRunner(self.model, self.cache, attention, self._lora.routing)
        self.policy: Policy = policy or FCFS()
        self.seqs: dict[str, Sequence] = {}
        self.preemptions = 0
        self._swapped_blocks = 0
        self.last_step: StepSample | None = None  # what the latest iteration computed, and its wall time

    @classmethod
    def load(cls, model: str | Path, options: EngineOptions | None = None, policy: Policy | None = None) -> LLMEngine:
        """An engine on a checkpoint directory, a model name or a GGUF file (dequantized)."""
        path = resolve_checkpoint(model)
        if is_gguf(path):
            net, tokenizer = load_gguf(path)
            return cls(net, tokenizer, options, policy)
        net = load_checkpoint(path)
        return cls(net, load_tokenizer(path, net.config), options, policy)

    # --- adapters ---------------------------------------------------------------
    def add_adapter(self, name: str, adapter: LoraAdapter) -> None:
        """Serve ``adapter`` for requests with ``lora_adapter=name`` from the next iteration on
        (callable from any thread; a name already served gets the new weights, and its answers
        already running continue on them)."""
        self._lora.add(name, adapter)

    @property
    def adapters(self) -> tuple[str, ...]:
        return self._lora.names

    # --- requests ---------------------------------------------------------------
    def check(
        self, prompt: Seq[int], resume: Seq[int], params: SamplingParams, lora_adapter: str | None = None
    ) -> None:
        """Refuse what can never run, naming the field (before anything is queued)."""
        self._lora.check(lora_adapter)
        if params.output is not None and params.output.constrained:
            check_spec(params.output)
        if not prompt:
            raise UsageError("prompt", "must contain at least one token")
        vocab = self.tokenizer.vocab_size
        for field, ids in (("prompt", prompt), ("resume_tokens", resume)):
            bad = next((i for i in ids if not 0 <= int(i) < vocab), None)
            if bad is not None:
                raise UsageError(field, f"token id {bad} outside vocabulary of {vocab}")
        n = len(prompt) + len(resume)
        if n >= self.context_length:
            raise UsageError(
                "messages" if not resume else "resume_tokens",
                f"{n} tokens do not fit the model's context of {self.context_length} tokens (limit "
                f"{self.context_length - 1} prompt tokens)",
            )
        if self.blocks.blocks_for(min(self.context_length, n + params.max_tokens)) > self.blocks.num_blocks:
            raise UsageError(
                "max_tokens",
                f"prompt + max_tokens need more than the KV cache's {self.blocks.num_blocks * self.blocks.block_size}"
                " tokens",
            )

    def add_request(
        self,
        request_id: str,
        prompt: Seq[int],
        params: SamplingParams,
        resume: Seq[int] = (),
        arrival_s: float | None = None,
        slo: AnySlo | None = None,
        lora_adapter: str | None = None,
    ) -> None:
        if request_id in self.seqs:
            raise UsageError("request_id", f"{request_id!r} is already running")
        self.check(prompt, resume, params, lora_adapter)
        tokens = [int(t) for t in (*prompt, *resume)]
        self.seqs[request_id] = Sequence(
            id=request_id,
            tokens=tokens,
            prompt_len=len(tokens),
            params=params,
            sampler=sampler_for(params, self.tokenizer, resume),
            output=Continuation(self.tokenizer, params, self.context_length, len(tokens)),
            arrival_s=time.monotonic() if arrival_s is None else arrival_s,
            slo=slo,
            lora_adapter=lora_adapter,
        )

    def abort(self, request_id: str) -> bool:
        seq = self.seqs.pop(request_id, None)
        if seq is None:
            return False
        self._free(seq)
        return True

    def has_work(self) -> bool:
        return bool(self.seqs)

    def stats(self) -> EngineStats:
        states = [s.state for s in self.seqs.values()]
        return EngineStats(
            waiting=states.count(SeqState.WAITING),
            running=states.count(SeqState.RUNNING),
            swapped=states.count(SeqState.SWAPPED),
            blocks_total=self.blocks.num_blocks,
            blocks_free=self.blocks.num_free,
            prefix_hit_blocks=self.blocks.hits,
            preemptions=self.preemptions,
        )

    # --- one iteration ------------------------------------------------------------
    def step(self, now: float | None = None) -> list[TokenOutput]:
        started = time.perf_counter()
        now = time.monotonic() if now is None else now
        o = self.options
        self._lora.install()
        for seq in self.seqs.values():
            if seq.state == SeqState.WAITING and not seq.prefix_checked:
                seq.cache_root = self._lora.root(seq.lora_adapter)
                seq.block_table, seq.block_hashes = self.blocks.match_prefix(seq.tokens, seq.cache_root)
                seq.computed = len(seq.block_table) * self.blocks.block_size
                seq.prefix_checked = True
        ref = self.blocks.ref
        views = [s.view(sum(ref[b] == 1 for b in s.block_table)) for s in self.seqs.values()]
        plan = schedule(
            self.policy, views, Budget(o.max_batched_tokens, o.max_num_seqs, self.blocks.num_free, o.block_size), now
        )
        for sid in plan.preempt:
            self._preempt(self.seqs[sid])
        work = [(self.seqs[sid], self._admit(self.seqs[sid], n)) for sid, n in plan.run]
        if not work:
            return []
        kv = sum(seq.computed for seq, _ in work)
        # sequences of one adapter side by side: one segment (one shrink/expand pair) per adapter
        work.sort(key=lambda w: self._lora.index(w[0].lora_adapter))
        adapters = [self._lora.index(seq.lora_adapter) for seq, _ in work]
        logits = self.runner.execute(work, adapters).float().cpu().numpy()
        outputs = []
        for (seq, n), row in zip(work, logits, strict=True):
            seq.computed += n
            self.blocks.commit(seq.tokens, seq.block_table, seq.block_hashes, seq.computed, seq.cache_root)
            if seq.computed == len(seq.tokens):
                outputs.append(self._sample(seq, row, now))
        self.last_step = StepSample(sum(n for _, n in work), len(work), kv, time.perf_counter() - started)
        return outputs

    def _admit(self, seq: Sequence, n: int) -> int:
        """Give ``seq`` the blocks for ``n`` more tokens; returns the tokens it will compute."""
        if seq.state == SeqState.SWAPPED:
            assert seq.swapped_kv is not None
            seq.block_table = [self.blocks.allocate() for _ in range(self.blocks.blocks_for(seq.computed))]
            self.cache.swap_in(seq.swapped_kv, seq.block_table)
            self._swapped_blocks -= len(seq.block_table)
            seq.swapped_kv = None
        seq.state = SeqState.RUNNING
        while len(seq.block_table) < self.blocks.blocks_for(seq.computed + n):
            seq.block_table.append(self.blocks.allocate())
        return n

    def _preempt(self, seq: Sequence) -> None:
        self.preemptions += 1
        seq.preemptions += 1
        blocks = self.blocks.blocks_for(seq.computed)
        if self.options.preemption == "swap" and self._swapped_blocks + blocks <= self.swap_blocks:
            seq.swapped_kv = self.cache.swap_out(seq.block_table[:blocks])
            self._swapped_blocks += blocks
            self.blocks.release(seq.block_table)
            seq.block_table, seq.state = [], SeqState.SWAPPED
            return
        self._free(seq)  # recompute: its tokens (output so far included) are prefilled again
        seq.computed, seq.state, seq.prefix_checked = 0, SeqState.WAITING, False

    def _free(self, seq: Sequence) -> None:
        self.blocks.release(seq.block_table)
        if seq.swapped_kv is not None:
            self._swapped_blocks -= self.blocks.blocks_for(seq.computed)
            seq.swapped_kv = None
        seq.block_table, seq.block_hashes = [], []

    def _sample(self, seq: Sequence, logits: np.ndarray, now: float) -> TokenOutput:
        token = seq.sampler(logits)
        k = seq.logprobs
        logprob = None if k is None else token_logprob(logits, token, k, self.tokenizer.token_bytes)
        seq.tokens.append(token)
        seq.generated.append(token)
        text, finish = seq.output.accept(token)
        out = TokenOutput(seq.id, token, text, len(seq.generated) - 1, finish, seq.prompt_len, now, logprob)
        if finish:
            seq.finish_reason, seq.state = finish, SeqState.FINISHED
            self.abort(seq.id)
        return out

    def generate(
        self, prompts: Seq[Seq[int]], params: SamplingParams, lora_adapters: Seq[str | None] | None = None
    ) -> list[list[int]]:
        """Run ``prompts`` to completion together (offline use and tests), prompt i with adapter
        ``lora_adapters[i]`` (default: the base model for all)."""
        for i, p in enumerate(prompts):
            self.add_request(f"offline-{i}", p, params, lora_adapter=lora_adapters[i] if lora_adapters else None)
        out: dict[str, list[int]] = {f"offline-{i}": [] for i in range(len(prompts))}
        while self.has_work():
            for t in self.step():
                out[t.request_id].append(t.token_id)
        return [out[f"offline-{i}"] for i in range(len(prompts))]
