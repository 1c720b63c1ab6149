"""An open-loop replay of timed requests against any OpenAI-compatible ``/v1/completions`` server.

Each request is sent at its arrival time whether or not earlier ones have finished (open loop: the
offered load does not slow down when the server does), streamed, with its prompt as token ids so
every server sees the same tokens, greedy, ``ignore_eos`` and ``max_tokens`` fixed so every server
generates the same number of tokens.  A request's times are taken on arrival of each streamed
chunk that carries text, as a client sees them; the generated and prompt token counts are the
server's own (``usage``), checked against what was asked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np


@dataclass(frozen=True)
class TimedRequest:
    arrival_s: float  # from the start of the replay
    prompt: tuple[int, ...]  # token ids
    output_tokens: int


@dataclass(frozen=True)
class Served:
    arrival_s: float
    chunk_times_s: tuple[float, ...]  # from the start of the replay, one per chunk with text
    completion_tokens: int
    prompt_tokens: int


@dataclass(frozen=True)
class LoadResult:
    """One server at one offered load."""

    throughput_tok_s: float  # generated tokens / (end of the last answer - start of the replay)
    makespan_s: float
    ttft_p50_s: float
    ttft_p99_s: float
    tbt_p50_s: float
    tbt_p99_s: float
    requests: int


class ReplayFailed(RuntimeError):
    pass


def summarize(served: Sequence[Served]) -> LoadResult:
    """TTFT from the request's arrival (so a late send counts against the server); TBT between chunks."""
    makespan = max(s.chunk_times_s[-1] for s in served)
    ttft = [s.chunk_times_s[0] - s.arrival_s for s in served]
    tbt = [b - a for s in served for a, b in zip(s.chunk_times_s, s.chunk_times_s[1:], strict=False)]
    return LoadResult(
        throughput_tok_s=sum(s.completion_tokens for s in served) / makespan,
        makespan_s=makespan,
        ttft_p50_s=float(np.percentile(ttft, 50)),
        ttft_p99_s=float(np.percentile(ttft, 99)),
        tbt_p50_s=float(np.percentile(tbt, 50)) if tbt else 0.0,
        tbt_p99_s=float(np.percentile(tbt, 99)) if tbt else 0.0,
        requests=len(served),
    )


async def _one(session: aiohttp.ClientSession, url: str, model: str, req: TimedRequest, t0: float) -> Served:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, t0 + req.arrival_s - loop.time()))
    body = {
        "model": model,
        "prompt": list(req.prompt),
        "max_tokens": req.output_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    times: list[float] = []
    usage: dict[str, int] | None = None
    async with session.post(url + "/v1/completions", json=body) as resp:
        if resp.status != 200:
            raise ReplayFailed(f"{url}: HTTP {resp.status}: {(await resp.text())[:300]}")
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise ReplayFailed(f"{url}: stream error {chunk['error']}")
            if any(c.get("text") for c in chunk.get("choices") or ()):
                times.append(loop.time() - t0)
            usage = chunk.get("usage") or usage
    if usage is None or not times:
        raise ReplayFailed(f"{url}: a stream ended without {'usage' if times else 'any text'}")
    served = Served(req.arrival_s, tuple(times), int(usage["completion_tokens"]), int(usage["prompt_tokens"]))
    if served.completion_tokens != req.output_tokens or served.prompt_tokens != len(req.prompt):
        raise ReplayFailed(
            f"{url}: asked for {len(req.prompt)} prompt + {req.output_tokens} generated tokens, the server "
            f"counted {served.prompt_tokens} + {served.completion_tokens}"
        )
    return served


async def _replay(url: str, model: str, key: str, reqs: Sequence[TimedRequest], timeout_s: float) -> list[Served]:
    # a fresh connection per request, as many users would open: a kept-alive one that the server
    # closed while idle (llama-server's HTTP library does after 5 s) would fail the next request
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        t0 = asyncio.get_running_loop().time()
        return list(await asyncio.gather(*(_one(session, url, model, r, t0) for r in reqs)))


def replay(url: str, model: str, key: str, reqs: Sequence[TimedRequest], timeout_s: float = 600.0) -> LoadResult:
    """``key``: the bearer token (a server that checks none ignores it)."""
    return summarize(asyncio.run(_replay(url, model, key, reqs, timeout_s)))
