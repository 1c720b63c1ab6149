"""The fine-tuning API end to end on a real aiohttp cloud server with ``[cloud.tlora]``: a tiny
household job trains for real, succeeds and is served; list, retrieve, events, cancel; bad specs are
400s naming the field, an unknown job a 404."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cloud.server import build
from cloud.tlora.cost import StepCost
from cloud.tlora.service import COST_FILE, scheduler_for
from edgeweave.config import CloudServerConfig, EngineOptions, TloraOptions
from edgeweave.wire.client import BlockingClient
from edgeweave.wire.fine_tuning import FineTuningEventList, FineTuningJob, FineTuningJobList

MODEL = "weave-home-device"
KEY = "tlora-test-key-0123456789"
JOBS = "/v1/fine_tuning/jobs"
COST = StepCost(fixed_s=0.05, per_job_s=0.01, per_token_s=1e-6, per_lora_token_s=1e-6)
TINY = {"rank": 4, "alpha": 8.0, "batch_size": 2, "n_steps": 3}  # a few steps of two short examples


class LiveCloud:
    """``cloud.server``'s app (engine and fine-tuning runtime started) on a free port, served from
    a thread's event loop, so a test talks to it over real HTTP."""

    def __init__(self, workdir: Path) -> None:
        # the scheduler's step-time model, stated rather than measured at start (the calibration
        # takes minutes on a busy machine; the cost model and policy have their own tests)
        (workdir / COST_FILE).write_text(json.dumps(dataclasses.asdict(COST)))
        cfg = CloudServerConfig(
            model=MODEL,
            port=0,
            api_keys=[KEY],
            engine=EngineOptions(kv_cache_mb=4.0),
            tlora=TloraOptions(workdir=workdir),
        )
        self.app, self.state = build(cfg, [KEY])
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(60)
        self.url = f"http://127.0.0.1:{port}"
        self.client = BlockingClient(self.url, api_key=KEY)

    async def _start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.state.engine.start()
        assert self.state.tlora is not None
        self.state.tlora.start()
        return int(self._runner.addresses[0][1])

    def close(self) -> None:
        assert self.state.tlora is not None
        self.state.tlora.close()
        self.state.engine.stop()
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        answer = self.client.exchange(method, path, raw)
        return answer.status, json.loads(answer.body)

    def wait(self, job_id: str, timeout_s: float = 90.0) -> FineTuningJob:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.client.get(f"{JOBS}/{job_id}", FineTuningJob)
            if job.status in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
                return job
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    live = LiveCloud(tmp_path_factory.mktemp("tlora"))
    yield live
    live.close()


def household_job(suffix: str, seed: int = 0, **hyper: Any) -> dict[str, Any]:
    data = {"household": suffix, "seed": seed, "train_size": 8}
    return {"model": MODEL, "suffix": suffix, "training_data": data, "hyperparameters": {**TINY, **hyper}}


def test_a_household_job_trains_succeeds_and_is_served(cloud: LiveCloud) -> None:
    status, body = cloud.send("POST", JOBS, household_job("smith"))
    assert status == 200, body
    job = FineTuningJob.model_validate(body)
    assert job.fine_tuned_model == f"{MODEL}:smith" and job.total_steps == 3
    done = cloud.wait(job.id)
    assert done.status == "succeeded", done.error
    assert done.step == 3 and done.trained_samples == 3 * 2 and done.trained_tokens > 0
    assert done.train_loss is not None and done.finished_at is not None

    events = cloud.client.get(f"{JOBS}/{job.id}/events?limit=1000", FineTuningEventList).data
    losses = [(e.step, e.train_loss) for e in events if e.type == "metrics"]
    assert [s for s, _ in losses] == sorted({s for s, _ in losses}) and losses  # one per logged step
    assert all(loss is not None and loss > 0 for _, loss in losses)
    assert any("succeeded" in e.message for e in events)
    first = cloud.client.get(f"{JOBS}/{job.id}/events?limit=1", FineTuningEventList)
    rest = cloud.client.get(f"{JOBS}/{job.id}/events?limit=1000&after={first.data[0].id}", FineTuningEventList)
    assert first.has_more and [e.id for e in first.data + rest.data] == [e.id for e in events]

    listed = cloud.client.get(JOBS, FineTuningJobList).data
    assert job.id in [j.id for j in listed]
    assert "smith" in cloud.state.engine.engine.adapters  # serve_finished: the engine holds it
    status, models = cloud.send("GET", "/v1/models")
    assert f"{MODEL}:smith" in [m["id"] for m in models["data"]]
    chat = {"model": f"{MODEL}:smith", "messages": [{"role": "user", "content": "movie mode"}], "max_tokens": 8}
    status, answer = cloud.send("POST", "/v1/chat/completions", chat)
    assert status == 200 and answer["model"] == f"{MODEL}:smith", answer


def test_cancel_a_running_job_and_refuse_a_taken_suffix(cloud: LiveCloud) -> None:
    examples = [{"prompt": "movie mode", "completion": '[{"call":"lights.off","room":"den"}]'}] * 4
    body = {
        "model": MODEL,
        "suffix": "long",
        "training_data": examples,
        "hyperparameters": {**TINY, "n_steps": 100_000},
    }
    status, created = cloud.send("POST", JOBS, body)
    assert status == 200, created
    status, dup = cloud.send("POST", JOBS, body)
    assert status == 400 and dup["error"]["param"] == "suffix"
    status, cancelled = cloud.send("POST", f"{JOBS}/{created['id']}/cancel")
    assert status == 200 and cancelled["status"] in ("cancelled", "running", "queued")
    assert cloud.wait(created["id"]).status == "cancelled"
    status, again = cloud.send("POST", f"{JOBS}/{created['id']}/cancel")
    assert status == 400 and "cancel" in again["error"]["message"]
    status, _ = cloud.send("POST", JOBS, body | {"hyperparameters": TINY})  # a cancelled job frees its suffix
    assert status == 200


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"model": "weave-home-cloud"}, "model"),
        ({"suffix": "Not A Suffix"}, "suffix"),
        ({"hyperparameters": {**TINY, "rank": 2}}, "hyperparameters.rank"),
        ({"hyperparameters": {**TINY, "target_modules": ["q_proj", "qkv"]}}, "hyperparameters.target_modules"),
        ({"hyperparameters": {**TINY, "warmup_steps": 9}}, "hyperparameters.warmup_steps"),
        ({"hyperparameters": {"rank": 4, "n_steps": 3, "n_epochs": 1.0}}, "hyperparameters"),
        ({"training_data": [{"prompt": "x" * 600, "completion": "y"}]}, "training_data[0]"),
        ({"training_data": []}, "training_data"),
        ({"training_data": {"household": "smith", "seed": -1}}, "training_data.seed"),
        ({"learning_rate": 0.1}, "learning_rate"),
    ],
)
def test_bad_specs_are_400s_naming_the_field(cloud: LiveCloud, change: dict[str, Any], param: str) -> None:
    status, body = cloud.send("POST", JOBS, household_job("bad") | change)
    assert status == 400, body
    assert body["error"]["param"] == param and body["error"]["message"].startswith(param)


def test_unknown_jobs_paths_methods_and_keys(cloud: LiveCloud) -> None:
    status, body = cloud.send("GET", f"{JOBS}/ftjob-nope")
    assert status == 404 and body["error"]["param"] == "job_id"
    assert cloud.send("GET", f"{JOBS}/ftjob-nope/events")[0] == 404
    assert cloud.send("POST", f"{JOBS}/ftjob-nope/cancel")[0] == 404
    assert cloud.send("GET", f"{JOBS}/a/b/c")[0] == 404
    assert cloud.send("DELETE", JOBS)[0] == 405
    status, body = cloud.send("GET", f"{JOBS}?limit=0")
    assert status == 400 and body["error"]["param"] == "limit"
    assert cloud.send("POST", JOBS, b"{not json")[0] == 400
    anonymous = BlockingClient(cloud.url).exchange("GET", JOBS)
    assert anonymous.status == 401
    metrics = cloud.client.call("GET", "/metrics").decode()  # one counter label per route, not per job
    assert 'path="/v1/fine_tuning/jobs/{id}"' in metrics and "ftjob-nope" not in metrics


@pytest.mark.slow
def test_the_step_time_model_is_measured_once_then_read(tmp_path: Path) -> None:
    scheduler = scheduler_for(TloraOptions(workdir=tmp_path), MODEL)  # times real GroupTrainer steps
    saved = json.loads((tmp_path / COST_FILE).read_text())
    assert StepCost(**saved) == scheduler.cost and scheduler.cost.fixed_s + scheduler.cost.per_job_s > 0
    assert scheduler_for(TloraOptions(workdir=tmp_path), MODEL).cost == scheduler.cost
