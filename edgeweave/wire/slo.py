"""What a request promises its client: Tempo's three request types (the wire model).

- ``latency`` (chat): token ``i`` is useful if it arrives by
  ``ttft_s + i * tbt_s`` after the request arrived;
- ``deadline`` (tool calls): the answer is useful only if it is complete by
  ``deadline_s``;
- ``compound`` (agent workflows): the calls of workflow ``workflow_id`` are
  useful only if its last call (``last``) finishes by ``deadline_s`` after
  the workflow's first call arrived.

Clients send one as the ``slo`` extension object of an OpenAI request; a
request without one is latency-sensitive with the server's defaults.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_SLO_S = 24 * 3600.0


class _Slo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencySLO(_Slo):
    type: Literal["latency"] = "latency"
    ttft_s: float = Field(default=1.0, gt=0.0, le=MAX_SLO_S)
    tbt_s: float = Field(default=0.1, gt=0.0, le=MAX_SLO_S)


class DeadlineSLO(_Slo):
    type: Literal["deadline"]
    deadline_s: float = Field(gt=0.0, le=MAX_SLO_S)


class CompoundSLO(_Slo):
    type: Literal["compound"]
    workflow_id: str = Field(min_length=1, max_length=128)
    stage: int = Field(default=0, ge=0, le=10_000)
    deadline_s: float = Field(gt=0.0, le=MAX_SLO_S)  # for the whole workflow, from its first call
    last: bool = False  # this call ends the workflow


AnySlo = LatencySLO | DeadlineSLO | CompoundSLO
Slo = Annotated[AnySlo, Field(discriminator="type")]
SloType = Literal["latency", "deadline", "compound"]
SLO_TYPES: tuple[SloType, ...] = ("latency", "deadline", "compound")
