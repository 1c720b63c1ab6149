"""One request inside the engine: its tokens, KV blocks, sampler and output state.

Every field a request carries through the engine is named and typed (vLLM v1's ``Request``): its
SLO (what the scheduling policy reads), the LoRA adapter it asks for (None: the base model)
and, through its sampling parameters, how many log-probability alternatives each token reports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import torch

from cloud.engine.scheduler import SeqView
from edgeweave.generation.sampling import Sampler, SamplingParams
from edgeweave.generation.stopping import Continuation, FinishReason
from edgeweave.wire.slo import AnySlo


class SeqState(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    SWAPPED = "swapped"
    FINISHED = "finished"


@dataclass
class Sequence:
    id: str
    tokens: list[int]  # prompt + resumed prefix + generated
    prompt_len: int  # prompt + resumed prefix: what is prefilled before generating
    params: SamplingParams
    sampler: Sampler
    output: Continuation
    arrival_s: float
    slo: AnySlo | None = None  # None: the policy's default SLO
    lora_adapter: str | None = None
    state: SeqState = SeqState.WAITING
    computed: int = 0
    block_table: list[int] = field(default_factory=list)
    block_hashes: list[int] = field(default_factory=list)
    swapped_kv: torch.Tensor | None = None
    generated: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    first_token_s: float | None = None
    preemptions: int = 0
    prefix_checked: bool = False  # looked up in the prefix cache since it last lost its blocks
    cache_root: int = 0  # where its blocks' prefix-cache hash chain starts: its adapter's (cloud.engine.lora)

    @property
    def logprobs(self) -> int | None:
        """None: no logprobs; k: each token's logprob and its k most likely alternatives."""
        return self.params.logprobs

    def view(self, exclusive: int) -> SeqView:
        return SeqView(
            id=self.id,
            arrival_s=self.arrival_s,
            state=self.state.value,  # type: ignore[arg-type]
            context_tokens=len(self.tokens),
            computed_tokens=self.computed,
            generated_tokens=len(self.generated),
            max_tokens=self.params.max_tokens,
            blocks_held=len(self.block_table),
            blocks_exclusive=exclusive,
            prompt_tokens=self.prompt_len,
            slo=self.slo,
        )
