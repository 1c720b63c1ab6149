"""The fine-tuning API's wire types (OpenAI-shaped ``/v1/fine_tuning/jobs``), served by the
cloud (tLoRA, :mod:`cloud.tlora`) and used by ``edgeweave tlora``.

``POST /v1/fine_tuning/jobs`` takes a :class:`FineTuningJobCreate` and answers a
:class:`FineTuningJob`; ``GET /v1/fine_tuning/jobs`` lists them (:class:`FineTuningJobList`),
``GET /v1/fine_tuning/jobs/{id}`` retrieves one, ``POST /v1/fine_tuning/jobs/{id}/cancel``
cancels it, ``GET /v1/fine_tuning/jobs/{id}/events`` returns its :class:`FineTuningEvent` list
(one per logged step, with the training loss; the job's state changes).  As in OpenAI's API the
tuned model is named by ``fine_tuned_model`` (here ``<base>:<suffix>``, e.g.
``weave-home-device:smith``) and, once the job succeeds, served under that model id.

Where OpenAI takes an uploaded ``training_file``, this API takes the data inline: either
examples, or a household of the smart-home generator (:mod:`edgeweave.data.households`).
Hyperparameters are LoRA's (rank, alpha, target modules) plus tLoRA's ``slowdown_bound``, how much
slower than training alone the job accepts in exchange for sharing the machine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgeweave.models.lora import ATTENTION_TARGETS, LoraConfig

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
SUFFIX_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainingExample(_Wire):
    prompt: str = Field(min_length=1, max_length=4096)  # the user's turn
    completion: str = Field(min_length=1, max_length=4096)  # the assistant's reply to learn


class HouseholdData(_Wire):
    """A household corpus from the generator: its rooms, devices, scenes and phrasing habits
    follow from ``seed``; ``train_size`` training examples (its held-out split is separate)."""

    household: str = Field(pattern=SUFFIX_PATTERN)
    seed: int = Field(ge=0)
    train_size: int = Field(default=512, ge=8, le=200_000)


class Hyperparameters(_Wire):
    rank: int = Field(default=8, ge=4, le=64)
    alpha: float = Field(default=16.0, gt=0.0, le=1024.0)
    target_modules: tuple[str, ...] = ATTENTION_TARGETS
    batch_size: int = Field(default=8, ge=1, le=1024)
    learning_rate: float = Field(default=2e-3, gt=0.0, le=1.0)
    n_epochs: float | None = Field(default=None, gt=0.0, le=1000.0)  # one of n_epochs / n_steps
    n_steps: int | None = Field(default=None, ge=1, le=1_000_000)
    warmup_steps: int = Field(default=0, ge=0)
    seed: int = Field(default=0, ge=0)  # adapter initialisation and data order
    slowdown_bound: float = Field(default=1.5, ge=1.0, le=100.0)  # step time shared / alone, at most

    # the adapter's own check (known names, none missing), so a bad name is refused at the door
    _known_targets = field_validator("target_modules")(LoraConfig._known_targets.__func__)  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _one_length(self) -> Hyperparameters:
        if (self.n_epochs is None) == (self.n_steps is None):
            raise ValueError("give exactly one of n_epochs and n_steps")
        return self


class FineTuningJobCreate(_Wire):
    model: str = Field(min_length=1)  # the base, a model the cloud serves (weave-home-device)
    suffix: str = Field(pattern=SUFFIX_PATTERN)  # the household: the tuned model is <model>:<suffix>
    training_data: list[TrainingExample] | HouseholdData
    validation_data: list[TrainingExample] | None = None
    hyperparameters: Hyperparameters = Field(default_factory=lambda: Hyperparameters(n_epochs=1.0))


class FineTuningJob(_Wire):
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    id: str
    model: str
    fine_tuned_model: str  # the model id it is served under once it succeeds
    status: JobStatus
    created_at: int  # unix seconds, as OpenAI
    started_at: int | None = None
    finished_at: int | None = None
    hyperparameters: Hyperparameters
    trained_tokens: int = 0
    trained_samples: int = 0
    step: int = 0
    total_steps: int
    train_loss: float | None = None  # the last logged step's
    error: str | None = None
    group: list[str] = Field(default_factory=list)  # the jobs it trains beside now (tLoRA's grouping)


class FineTuningJobList(_Wire):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool = False


class FineTuningEvent(_Wire):
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    id: str
    created_at: float
    level: Literal["info", "warn", "error"] = "info"
    message: str
    type: Literal["message", "metrics"] = "message"
    step: int | None = None
    train_loss: float | None = None


class FineTuningEventList(_Wire):
    object: Literal["list"] = "list"
    data: list[FineTuningEvent]
    has_more: bool = False
