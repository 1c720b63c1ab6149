"""DiSCo's request-level simulator: the live policy object on measured profiles, simulated time.

Each request is served as the planner says (DiSCo's :meth:`DiscoPolicy.plan`
or a baseline's), token by token: the device's TTFT is its fitted line at the
prompt length (each request on its user's own device: no device queueing),
the cloud's is drawn from measured TTFTs (queueing and network included);
tokens then follow at each tier's measured time between tokens.  After every
token the policy is asked whether to migrate, as the coordinator asks it; a
move stops the source at once and takes the target's TTFT for prompt + tokens
sent: the client sees one gap (the tokens the source would have made in it
are *delayed*), the reader, reading at its pace, only stalls if the gap
outlasts its buffer.  Every leg is charged through the policy (race losers their
prompt, migration targets their resumed prefix), and TTFTs and answer lengths
are fed back to it, as the runtime does.  One answer migrates at most once (a
move never pays in both directions).

Warming, as the live controller does it: when the policy says so
(:meth:`DiscoPolicy.should_warm`), the other tier prefills the prompt and
then, in rounds started at token times, the tokens sent since (each round
takes that tier's TTFT for its tokens, and is charged as it starts); a move
then takes the target's TTFT for the tokens it does not hold yet.  A race's
loser, charged for prefilling the prompt, leaves it in its prompt cache (a
move there prefills only the rest); if the policy warms it, its rounds go on
from there.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from coordinator.cluster.placement import Tier
from coordinator.disco.cost import DeviceEnergy
from coordinator.disco.dispatch_policy import DeviceTTFT
from coordinator.disco.migration import other
from coordinator.disco.policy import DiscoPolicy, DispatchPlan

MODEL = "sim"


@dataclass(frozen=True)
class Profiles:
    device_ttft: DeviceTTFT
    device_tbt_s: float
    device_energy: DeviceEnergy
    cloud_ttft_s: Sequence[float]  # measured, network included: drawn uniformly
    cloud_tbt_s: float
    context: int  # prompt + output tokens a request may use

    def tbt(self, tier: Tier) -> float:
        return self.device_tbt_s if tier == "device" else self.cloud_tbt_s


class Planner(Protocol):
    name: str

    def plan(self, prompt_tokens: int) -> DispatchPlan: ...


@dataclass
class SimAnswer:
    ttft_s: float
    gaps_s: list[float]  # between consecutive tokens as the client receives them
    cost_usd: float
    migrated: bool = False
    delayed_tokens: int = 0
    reader_stall_s: float = 0.0
    first_tier: Tier = "device"
    warmed: bool = False  # the other tier prefilled it in the background


@dataclass
class _Warm:
    """The other tier's background prefill of one answer, one round at a time."""

    tier: Tier
    cached: int = 0  # prompt + answer tokens its completed rounds hold
    upto: int = 0  # what the round in flight will hold
    done_at: float = math.inf  # when the round in flight ends (inf: none in flight)
    rounds: bool = True  # False: what a race's loser left, no rounds started (unless the policy says so)

    def step(self, policy: DiscoPolicy, t: float, avail: int, prof: Profiles, rng: random.Random) -> float:
        """At a token time ``t`` with ``avail`` tokens known: finish a round that ended, start the next
        one if there is anything new; returns what a started round cost."""
        if self.done_at <= t:
            self.cached, self.done_at = self.upto, math.inf
        if not self.rounds or self.done_at < math.inf or avail <= self.cached:
            return 0.0
        n = avail - self.cached
        self.upto, self.done_at = avail, t + prefill_time(self.tier, n, prof, rng)
        return policy.charge_warm(self.tier, n, prof.device_energy)


def prefill_time(tier: Tier, tokens: int, prof: Profiles, rng: random.Random) -> float:
    """Time to the first token after prefilling ``tokens`` on ``tier`` (the cloud's drawn from its TTFTs)."""
    return prof.device_ttft(tokens) if tier == "device" else rng.choice(prof.cloud_ttft_s)


def first_token(plan: DispatchPlan, device_s: float, cloud_s: float) -> tuple[Tier, float, Tier | None]:
    """(winner, its TTFT from arrival, the loser if it was started)."""
    ttft = {"device": device_s, "cloud": cloud_s}
    if plan.second is None:
        return plan.first, ttft[plan.first], None
    first_done = ttft[plan.first]
    if first_done <= plan.second_after_s:
        return plan.first, first_done, None  # the second never started
    second_done = plan.second_after_s + ttft[plan.second]
    if first_done <= second_done:
        return plan.first, first_done, plan.second
    return plan.second, second_done, plan.first


def serve(
    policy: DiscoPolicy, planner: Planner | None, prompt: int, output: int, prof: Profiles, rng: random.Random
) -> SimAnswer:
    """One request: planned by ``planner`` (None: the policy itself), charged through ``policy``."""
    if planner is None:
        plan = policy.plan(MODEL, prompt, ("device", "cloud"))
    else:
        policy.spend.offer(prompt)
        plan = planner.plan(prompt)
    energy = prof.device_energy
    cloud_s = rng.choice(prof.cloud_ttft_s)
    device_s = prof.device_ttft(prompt)
    src, ttft, loser = first_token(plan, device_s, cloud_s)
    ttft_of = {"device": device_s, "cloud": cloud_s}
    cost = 0.0
    if loser is not None:
        cost += policy.charge(loser, prompt, 0, 0, energy)
    policy.observe_ttft(MODEL, src, prompt, device_s if src == "device" else cloud_s)
    t, sent, generated, resumed, cached = ttft, 1, 1, 0, 0
    out = SimAnswer(ttft, [], 0.0, first_tier=src)
    tried = False
    warm: _Warm | None = None
    if (
        loser is not None and policy.cfg.migrate and policy.warm
    ):  # the race's loser prefilled the prompt (it is charged for it): the warm's first round
        done = ttft_of[loser] + (plan.second_after_s if loser == plan.second else 0.0)
        warm = _Warm(loser, upto=prompt, done_at=done)
        out.warmed = True
    while sent < output:
        tbt = prof.tbt(src)
        target = other(src)
        if warm is not None:
            cost += warm.step(policy, t, prompt + sent, prof, rng)
        args = (MODEL, src, prompt, sent, t - ttft, prof.context - prompt, 1.0 / prof.tbt(target), energy)
        if not tried and policy.should_migrate(*args, cached=warm.cached if warm else 0, warming=warm is not None):
            held = warm.cached if warm else 0
            migration_s = prefill_time(target, prompt + sent - held, prof, rng)
            policy.observe_ttft(MODEL, target, prompt + sent - held, migration_s)
            cost += policy.charge(src, prompt, generated, resumed, energy, cached)
            tried, out.migrated, warm = True, True, None
            out.delayed_tokens = min(math.floor(migration_s / tbt), output - sent)
            src, resumed, generated, cached = target, sent, 1, held
            t += migration_s
            out.gaps_s.append(migration_s)
            sent += 1
            continue
        if not tried and (warm is None or not warm.rounds):
            left = warm.upto if warm is not None else 0  # what a race's loser is prefilling or holds
            if policy.should_warm(*args, cached=left):
                warm = warm or _Warm(target)
                warm.rounds, out.warmed = True, True
                cost += warm.step(policy, t, prompt + sent, prof, rng)
        t += tbt
        out.gaps_s.append(tbt)
        sent += 1
        generated += 1
    out.cost_usd = cost + policy.charge(src, prompt, generated, resumed, energy, cached)
    out.reader_stall_s = reader_stall(ttft, out.gaps_s, policy.cfg.reading_tok_s)
    policy.observe_answer(MODEL, output)
    return out


def reader_stall(ttft_s: float, gaps_s: Sequence[float], reading_tok_s: float) -> float:
    """Seconds a reader at ``reading_tok_s`` waits for tokens after the first one."""
    delivered = read = ttft_s
    stall = 0.0
    for gap in gaps_s:
        delivered += gap
        due = read + 1.0 / reading_tok_s
        stall += max(0.0, delivered - due)
        read = max(delivered, due)
    return stall


def simulate(
    policy: DiscoPolicy,
    planner: Planner | None,
    requests: Sequence[tuple[int, int]],
    prof: Profiles,
    seed: int = 0,
) -> list[SimAnswer]:
    """Serve (prompt tokens, output tokens) requests in order; request ``i`` draws its cloud
    TTFTs from its own seeded stream, so every policy meets the same cloud."""
    return [
        serve(policy, planner, prompt, output, prof, random.Random(seed * 1_000_003 + i))
        for i, (prompt, output) in enumerate(requests)
    ]
