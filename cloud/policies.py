"""The cloud's scheduling policies by name: what ``[cloud.engine] policy`` may say.

The engine (:mod:`cloud.engine`) takes a :class:`~cloud.engine.scheduler.Policy` object and
knows no names; Tempo (:mod:`cloud.tempo`) builds on the engine's scheduler interface.  This
registry sits above both: it maps each config name to a factory (Tempo, the default, or one of
the baselines it is measured against), and :func:`check_config` refuses a name it does not
know when the cloud starts, as a config problem naming the field (the core's config schema
cannot import the cloud).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cloud.engine.scheduler import FCFS, Policy
from cloud.tempo.baselines import EDF, LAS, SRTF, PriorityClasses
from cloud.tempo.length import LengthBound
from cloud.tempo.policy import Tempo
from cloud.tempo.remaining import BoundLengths, LengthSource, MaxTokens
from cloud.tempo.workflows import GraphLibrary
from edgeweave.config import CloudServerConfig, EngineOptions
from edgeweave.errors import ConfigError

# (output lengths, sequence cap, token budget per iteration, workflow graphs) -> a fresh policy
Factory = Callable[[LengthSource, int, int, GraphLibrary | None], Policy]


@dataclass(frozen=True)
class PolicyEntry:
    build: Factory
    reads_lengths: bool = False  # only these load the trained length model


POLICIES: dict[str, PolicyEntry] = {
    "tempo": PolicyEntry(lambda lengths, batch, budget, library: Tempo(lengths, batch, budget, library=library), True),
    "srtf": PolicyEntry(lambda lengths, batch, budget, library: SRTF(lengths), True),
    "fcfs": PolicyEntry(lambda lengths, batch, budget, library: FCFS()),
    "priority": PolicyEntry(lambda lengths, batch, budget, library: PriorityClasses()),
    "edf": PolicyEntry(lambda lengths, batch, budget, library: EDF()),
    "las": PolicyEntry(lambda lengths, batch, budget, library: LAS()),
}
POLICY_FIELD = "cloud.engine.policy"


def _entry(name: str) -> PolicyEntry:
    entry = POLICIES.get(name)
    if entry is None:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(sorted(POLICIES))})")
    return entry


def policy_named(
    name: str, lengths: LengthSource, batch: int, token_budget: int, library: GraphLibrary | None = None
) -> Policy:
    """A fresh policy: Tempo and SRTF read output lengths from ``lengths``; Tempo matches workflows
    against ``library`` (None: its own, empty)."""
    return _entry(name).build(lengths, batch, token_budget, library)


def length_source(options: EngineOptions) -> LengthSource:
    return BoundLengths(LengthBound.load(options.length_model)) if options.length_model else MaxTokens()


def make_policy(options: EngineOptions) -> Policy:
    """The configured policy; the length model is loaded only for the policies that read lengths."""
    lengths = length_source(options) if _entry(options.policy).reads_lengths else MaxTokens()
    return policy_named(options.policy, lengths, options.max_num_seqs, options.max_batched_tokens)


def check_config(cfg: CloudServerConfig, source: str | Path = "[cloud] config") -> None:
    """Raise :class:`ConfigError` naming ``cloud.engine.policy`` if no policy has that name."""
    try:
        _entry(cfg.engine.policy)
    except ValueError as e:
        raise ConfigError(Path(source), [f"{POLICY_FIELD}: {e}"]) from None
