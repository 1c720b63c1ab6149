"""The engine's scheduling policy by name: Tempo (the default) or one of its baselines."""

from __future__ import annotations

from cloud.engine.scheduler import FCFS, Policy
from cloud.tempo.baselines import EDF, LAS, SRTF, PriorityClasses
from cloud.tempo.length import LengthBound
from cloud.tempo.policy import Tempo
from cloud.tempo.remaining import BoundLengths, LengthSource, MaxTokens
from cloud.tempo.workflows import GraphLibrary
from edgeweave.config import EngineOptions


def length_source(options: EngineOptions) -> LengthSource:
    return BoundLengths(LengthBound.load(options.length_model)) if options.length_model else MaxTokens()


def policy_named(
    name: str, lengths: LengthSource, batch: int, token_budget: int, library: GraphLibrary | None = None
) -> Policy:
    """A fresh policy: Tempo and SRTF read output lengths from ``lengths``; Tempo matches workflows
    against ``library`` (None: its own, empty)."""
    match name:
        case "tempo":
            return Tempo(lengths, batch, token_budget, library=library)
        case "srtf":
            return SRTF(lengths)
        case "fcfs":
            return FCFS()
        case "priority":
            return PriorityClasses()
        case "edf":
            return EDF()
        case "las":
            return LAS()
    raise ValueError(f"unknown policy {name!r}")


def make_policy(options: EngineOptions) -> Policy:
    """The engine's policy; the length model is loaded only for the policies that read lengths."""
    lengths = length_source(options) if options.policy in ("tempo", "srtf") else MaxTokens()
    return policy_named(options.policy, lengths, options.max_num_seqs, options.max_batched_tokens)
