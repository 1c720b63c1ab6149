"""``/v1/audio/generations`` on the real cloud process with the committed sound model: a sound in every
answer shape (a WAV, FLAC as base64, a URL to fetch, an SSE stream of progress), a reworded request
warm-started from the cache with fewer steps, the metrics, and every bad input a 4xx naming its field
with the service still answering after it."""

from __future__ import annotations

import base64
import io
import json

import aiohttp
import pytest
import soundfile

from cloud.soundweaver.api import _stream
from edgeweave.cluster.processes import ServiceProcess
from edgeweave.models.sound import StepCallback
from edgeweave.wire.audio import AUDIO_GENERATIONS, AudioGenerationRequest
from tests.cloud.test_server import metric
from tests.conftest import CLOUD_KEY

AUTH = {"Authorization": f"Bearer {CLOUD_KEY}"}


async def post(svc: ServiceProcess, body: object) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as s:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with s.post(svc.url + AUDIO_GENERATIONS, data=data, headers=AUTH) as r:
            return r.status, await r.read(), dict(r.headers)


async def test_a_wav_comes_back_with_how_it_was_made(cloud_server: ServiceProcess) -> None:
    ask = {"model": "weave-sound", "prompt": "a loud fast beeping alarm", "duration": 1.5, "steps": 8}
    status, body, headers = await post(cloud_server, ask)
    assert status == 200, body
    assert headers["Content-Type"] == "audio/wav" and body[:4] == b"RIFF"
    audio, rate = soundfile.read(io.BytesIO(body))
    assert rate == 16_000 and len(audio) == 24_000
    assert headers["X-Edgeweave-Steps"] == "8" and headers["X-Edgeweave-Cache-Hit"] == "false"  # nothing like it yet
    assert headers["X-Edgeweave-Solver"] == "ddim"
    assert headers["X-Edgeweave-Steps-Run"] == "8" and float(headers["X-Edgeweave-Quality"]) > 0.3


async def test_flac_as_base64_a_url_to_fetch_and_a_reworded_request_warm_started(cloud_server: ServiceProcess) -> None:
    hits = metric(cloud_server.url, 'edgeweave_sound_generations_total{cache="hit"}')
    first = {"prompt": "gentle rain falling on the window", "duration": 2.0, "steps": 10, "seed": 1}
    status, body, _ = await post(cloud_server, {**first, "format": "flac", "response_format": "b64_json"})
    assert status == 200, body
    gen = json.loads(body)
    audio, rate = soundfile.read(io.BytesIO(base64.b64decode(gen["b64_json"])))
    assert gen["format"] == "flac" and rate == 16_000 and len(audio) == 32_000
    reworded = {"prompt": "soft rain falling on a window", "duration": 3.0, "steps": 10, "seed": 2}
    status, body, _ = await post(cloud_server, {**reworded, "response_format": "url"})
    assert status == 200, body
    gen = json.loads(body)
    assert gen["cache_hit"] and gen["steps_run"] < 10 and gen["reference"] == first["prompt"]
    assert gen["similarity"] >= 0.7 and gen["duration"] == 3.0
    async with aiohttp.ClientSession() as s:
        async with s.get(cloud_server.url + gen["url"], headers=AUTH) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
            assert len(soundfile.read(io.BytesIO(await r.read()))[0]) == 48_000
        async with s.get(cloud_server.url + "/v1/audio/files/audio-nope", headers=AUTH) as r:
            assert r.status == 404 and "no audio file" in (await r.json())["error"]["message"]
    assert metric(cloud_server.url, 'edgeweave_sound_generations_total{cache="hit"}') >= hits + 1
    assert metric(cloud_server.url, "edgeweave_sound_cache_entries") >= 2
    assert metric(cloud_server.url, "edgeweave_sound_steps_skipped_total") >= 1


async def test_a_stream_reports_each_step_then_the_generation(cloud_server: ServiceProcess) -> None:
    body = {
        "prompt": "a slow low knock on the door",
        "duration": 1.0,
        "steps": 6,
        "solver": "dpm",
        "stream": True,
        "response_format": "url",
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(cloud_server.url + AUDIO_GENERATIONS, json=body, headers=AUTH) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
            text = (await r.read()).decode()
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") if lines[0].startswith("event:") else "message" for lines in events]
    datas = [lines[-1].removeprefix("data: ") for lines in events]
    gen = json.loads(datas[names.index("generation")])
    progress = [json.loads(d) for n, d in zip(names, datas, strict=True) if n == "progress"]
    assert [p["step"] for p in progress] == list(range(1, gen["steps_run"] + 1))
    assert all(p["total"] == gen["steps_run"] for p in progress)
    assert names[-1] == "message" and datas[-1] == "[DONE]" and gen["url"].startswith("/v1/audio/files/")
    assert gen["solver"] == "dpm" and gen["steps"] == 6


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"prompt": "   "}, 400, "prompt"),
        ({"prompt": "a chime", "duration": 0.5}, 400, "duration"),
        ({"prompt": "a chime", "duration": 11}, 400, "duration"),
        ({"prompt": "a chime", "format": "mp3"}, 400, "format"),
        ({"prompt": "a chime", "steps": 0}, 400, "steps"),
        ({"prompt": "a chime", "solver": "euler"}, 400, "solver"),
        ({"prompt": "a chime", "stream": True}, 400, "response_format"),
        ({"prompt": "a chime", "voice": "alloy"}, 400, "voice"),
        ({"prompt": "a chime", "model": "tts-1"}, 404, "model"),
        ({"duration": 2}, 400, "prompt"),
        (b"{not json", 400, None),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    cloud_server: ServiceProcess, body: object, status: int, param: str | None
) -> None:
    got, raw, _ = await post(cloud_server, body)
    assert got == status, raw
    assert json.loads(raw)["error"]["param"] == param


async def test_the_service_answers_after_bad_input(cloud_server: ServiceProcess) -> None:
    await post(cloud_server, {"prompt": ""})
    status, body, _ = await post(cloud_server, {"prompt": "a bright music box tune", "duration": 1.0, "steps": 4})
    assert status == 200 and body[:4] == b"RIFF"


class _FailingService:
    """A sound service whose generation fails after its first step (the 200 is already sent)."""

    model_name = "weave-sound"

    async def generate(self, req: AudioGenerationRequest, on_step: StepCallback | None = None) -> None:
        assert on_step is not None
        on_step(1, req.steps or 50)
        raise RuntimeError("the worker ran out of memory")


async def test_a_failed_stream_ends_with_an_error_event_naming_why() -> None:
    req = AudioGenerationRequest(prompt="a chime", steps=4, stream=True, response_format="url")
    text = b"".join([c async for c in _stream(_FailingService(), req, "audio-x")]).decode()  # type: ignore[arg-type]
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    assert [lines[0] for lines in events] == ["event: progress", "event: error"]
    error = json.loads(events[-1][-1].removeprefix("data: "))["error"]
    assert error["type"] == "server_error" and "ran out of memory" in error["message"]
