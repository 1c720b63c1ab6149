"""The demo's home sounds: a door opens, the house asks the cloud for a chime and saves it.

Each event becomes a ``POST /v1/audio/generations`` on the cloud service (SoundWeaver,
:mod:`cloud.soundweaver`); the WAV is saved and the line printed says whether it was a cache hit
(warm-started from a similar cached sound) and how many denoising steps ran.  The second door event
words its chime differently: SoundWeaver finds the first chime, noises it part way and runs only the
remaining steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aiohttp
from rich.console import Console

from edgeweave.wire.audio import AUDIO_GENERATIONS

# (the event, the sound the house asks for, seconds)
DOOR_EVENTS: tuple[tuple[str, str, float], ...] = (
    ("front door opened", "a soft two-note chime for the front door", 2.0),
    ("front door opened again", "a gentle two-tone door chime", 2.0),
)


@dataclass(frozen=True)
class SoundHeard:
    event: str
    path: Path
    cache_hit: bool
    steps: int
    steps_run: int
    latency_s: float


async def ask_for_sound(
    session: aiohttp.ClientSession, url: str, key: str, prompt: str, seconds: float, seed: int, out: Path
) -> tuple[bool, int, int, float]:
    body = {"prompt": prompt, "duration": seconds, "seed": seed, "format": "wav"}
    async with session.post(url + AUDIO_GENERATIONS, json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        if r.status != 200:
            raise RuntimeError(f"the cloud refused the sound ({r.status}): {await r.text()}")
        out.write_bytes(await r.read())
        h = r.headers
        return (
            h["X-Edgeweave-Cache-Hit"] == "true",
            int(h["X-Edgeweave-Steps"]),
            int(h["X-Edgeweave-Steps-Run"]),
            float(h["X-Edgeweave-Latency-S"]),
        )


async def door_sounds(url: str, key: str, out_dir: Path, console: Console) -> list[SoundHeard]:
    """Every door event's sound, saved under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    heard = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        for i, (event, prompt, seconds) in enumerate(DOOR_EVENTS):
            path = out_dir / f"door-{i + 1}.wav"
            hit, steps, run, latency = await ask_for_sound(session, url, key, prompt, seconds, i, path)
            heard.append(SoundHeard(event, path, hit, steps, run, latency))
            how = f"cache hit: {run} of {steps} steps ran" if hit else f"cache miss: all {run} steps ran"
            console.print(f'sound: {event} -> "{prompt}": {how}, {latency:.2f} s, saved {path}')
    return heard
