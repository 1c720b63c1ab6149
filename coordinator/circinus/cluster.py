"""A running cluster as Circinus's tiers: which of a coordinator's endpoints
(``GET /v1/circinus/endpoints``, :mod:`coordinator.circinus.api`) serves each tier of a spec, and an
executor that runs operators there through the coordinator.

A spec's tier takes, unless told otherwise (``--tier TIER=ENDPOINT``), the
first endpoint of the kinds :data:`KINDS` lists for it: ``device`` a Pi or a
phone, ``edge`` a Jetson, ``cloud`` a cloud endpoint; any other tier name
takes an endpoint of that kind.  A tier no endpoint serves is left out: the
planner then never places an operator there.  :func:`add_arguments` and
:func:`from_arguments` give a command the flags that choose the cluster.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coordinator.circinus.spec import PipelineTier
from edgeweave.errors import EdgeweaveError, UsageError

if TYPE_CHECKING:  # the executor imports torch: only a run needs it, not --help
    from coordinator.circinus.executor import Executor

KINDS: dict[str, tuple[str, ...]] = {"device": ("pi", "phone"), "edge": ("jetson",), "cloud": ("cloud",)}


def endpoints(url: str, api_key: str) -> dict[str, str]:
    """The coordinator's endpoints: id -> kind."""
    from edgeweave.wire.circinus import ENDPOINTS_PATH, EndpointList
    from edgeweave.wire.client import BlockingClient, Refused, Unreachable

    try:
        listed = BlockingClient(url, api_key=api_key).get(ENDPOINTS_PATH, EndpointList, timeout_s=10)
    except Refused as e:
        if e.status in (401, 403):
            raise UsageError("--api-key", f"the coordinator at {url} refused it (HTTP {e.status})") from None
        raise EdgeweaveError(f"{url}: HTTP {e.status} listing endpoints ({e.error.message})") from None
    except Unreachable as e:
        raise UsageError("--url", f"no coordinator answers at {url} ({e})") from None
    return {e.id: e.kind for e in listed.data}


def assign(
    tiers: Iterable[PipelineTier], listed: Mapping[str, str], given: Mapping[PipelineTier, str]
) -> dict[PipelineTier, str]:
    """Each tier's endpoint: ``given`` first, else the first listed of the tier's kinds."""
    tiers = list(tiers)
    out: dict[PipelineTier, str] = {}
    for tier, endpoint in given.items():
        if tier not in tiers:
            raise UsageError("--tier", f"{tier}={endpoint}: the spec has no tier {tier!r} (it has {', '.join(tiers)})")
        if endpoint not in listed:
            have = ", ".join(sorted(listed)) or "none"
            raise UsageError("--tier", f"{tier}={endpoint}: the coordinator lists no such endpoint (it has {have})")
        out[tier] = endpoint
    for tier in tiers:
        if tier in out:
            continue
        for kind in KINDS.get(tier, (tier,)):
            found = sorted(e for e, k in listed.items() if k == kind)
            if found:
                out[tier] = found[0]
                break
    return out


def _assignments(items: Iterable[str]) -> dict[PipelineTier, str]:
    """``["edge=jetson-1", ...]`` from the command line."""
    out: dict[PipelineTier, str] = {}
    for item in items:
        tier, sep, endpoint = item.partition("=")
        if not sep or not tier or not endpoint:
            raise UsageError("--tier", f"{item!r}: expected TIER=ENDPOINT, e.g. edge=jetson-1")
        out[tier] = endpoint
    return out


@dataclass(frozen=True)
class Attached:
    """A coordinator and the endpoint serving each tier there."""

    url: str
    api_key: str
    tiers: dict[PipelineTier, str]

    def executor(self) -> Executor:
        from coordinator.circinus.executor import Endpoint, Executor

        return Executor(
            {t: Endpoint(self.url, api_key=self.api_key, path=f"/v1/circinus/run/{e}") for t, e in self.tiers.items()}
        )


def attach(
    url: str, api_key: str, tiers: Iterable[PipelineTier], given: Mapping[PipelineTier, str] | None = None
) -> Attached:
    return Attached(url, api_key, assign(tiers, endpoints(url, api_key), given or {}))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url``, ``--api-key`` and ``--tier``: run on a cluster through its coordinator."""
    parser.add_argument("--url", help="a coordinator's base URL: profile and run on its cluster's tiers "
                                      "(e.g. `edgeweave demo --serve`)")  # fmt: skip
    parser.add_argument("--api-key", help="the coordinator's API key (with --url)")
    parser.add_argument("--tier", action="append", default=[], metavar="TIER=ENDPOINT",
                        help="with --url: the endpoint serving a tier (default: by device kind)")  # fmt: skip


def from_arguments(
    url: str | None, api_key: str | None, tier: list[str], tiers: Iterable[PipelineTier]
) -> Attached | None:
    """The cluster ``--url`` names (None without it: the other two flags are then refused)."""
    if url is None:
        if api_key is not None or tier:
            raise UsageError("--api-key" if api_key is not None else "--tier", "only with --url")
        return None
    if not api_key:
        raise UsageError("--api-key", "needed with --url")
    return attach(url, api_key, tiers, _assignments(tier))
