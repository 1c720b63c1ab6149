"""The engine's scheduling policy by name: Tempo (the default) or one of its baselines."""

from __future__ import annotations

from cloud.engine.scheduler import FCFS, Policy
from cloud.tempo.baselines import EDF, LAS, SRTF, PriorityClasses
from cloud.tempo.length import LengthBound
from cloud.tempo.policy import Tempo
from cloud.tempo.remaining import BoundLengths, LengthSource, MaxTokens
from edgeweave.config import EngineOptions


def length_source(options: EngineOptions) -> LengthSource:
    return BoundLengths(LengthBound.load(options.length_model)) if options.length_model else MaxTokens()


def make_policy(options: EngineOptions) -> Policy:
    match options.policy:
        case "tempo":
            return Tempo(length_source(options), options.max_num_seqs, options.max_batched_tokens)
        case "srtf":
            return SRTF(length_source(options))
        case "fcfs":
            return FCFS()
        case "priority":
            return PriorityClasses()
        case "edf":
            return EDF()
        case "las":
            return LAS()
