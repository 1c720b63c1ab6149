"""The cloud's sound service: SoundWeaver's runtime behind the HTTP routes, loaded on first use.

One worker thread generates (as one accelerator would; requests queue in front of it and the
queue's length is the gater's load feature); when the queue empties, the cache's refinement job
runs on the same thread (``refine_when_idle``).  Generated files are kept, newest
``files_kept``, for ``GET /v1/audio/files/{id}``.  Metrics go to the cloud's Prometheus registry:
requests by cache outcome, latency, steps run, the online judge's quality, cache entries,
refinements.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cloud.soundweaver.baselines import Nirvana, NoCache
from cloud.soundweaver.cache import CacheOptions
from cloud.soundweaver.policy import CachePolicy, SoundJob, SoundWeaver
from cloud.soundweaver.runtime import GeneratedSound, SoundRuntime
from cloud.soundweaver.selector import Layout
from edgeweave.audio.corpus import SAMPLE_RATE
from edgeweave.audio.judges import Judges
from edgeweave.config import SoundOptions
from edgeweave.models.registry import checkpoint_dir
from edgeweave.models.sound import LatentSoundModel, StepCallback, load_sound_model
from edgeweave.wire.audio import AudioGenerationRequest

log = logging.getLogger("edgeweave.cloud.soundweaver")
QUEUE_FOR_FULL_LOAD = 8  # requests waiting at which the gater's load feature reads 1


def make_policy(o: SoundOptions, model: LatentSoundModel) -> CachePolicy:
    cache = CacheOptions(capacity=o.cache_entries, half_life_s=o.half_life_s, lru=o.policy == "soundweaver-lru")
    if o.policy in ("soundweaver", "soundweaver-lru"):
        layout = Layout(model.frames, model.silence, model.rows_are_mel)
        return SoundWeaver(cache, name=o.policy, refine_steps=model.default_steps, layout=layout)
    if o.policy == "nirvana":
        return Nirvana(o.cache_entries, model.frames)
    return NoCache("full")


def encode(audio: np.ndarray, fmt: str) -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, audio, SAMPLE_RATE, format=fmt.upper(), subtype="PCM_16")
    return buf.getvalue()


class SoundMetrics:
    def __init__(self, r: CollectorRegistry) -> None:
        self.requests = Counter("edgeweave_sound_generations", "Sound generations", ["cache"], registry=r)
        for outcome in ("hit", "miss"):
            self.requests.labels(outcome)  # both series exist (at 0) before the first generation
        self.latency = Histogram(
            "edgeweave_sound_latency_seconds", "Generation latency (sampling, vocoding, judging)",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64), registry=r,
        )  # fmt: skip
        self.steps_run = Counter("edgeweave_sound_steps_run", "Denoising steps run", registry=r)
        self.steps_skipped = Counter(
            "edgeweave_sound_steps_skipped", "Denoising steps a warm start skipped", registry=r
        )
        self.quality = Histogram(
            "edgeweave_sound_quality", "The online judge's text-audio score",
            buckets=tuple(i / 10 for i in range(11)), registry=r,
        )  # fmt: skip
        self.entries = Gauge("edgeweave_sound_cache_entries", "Sounds in the cache", registry=r)
        self.refinements = Counter("edgeweave_sound_refinements", "Cached sounds regenerated when idle", registry=r)
        self.waiting = Gauge("edgeweave_sound_queue_depth", "Sound requests waiting for the worker", registry=r)


class SoundService:
    def __init__(self, options: SoundOptions, registry: CollectorRegistry) -> None:
        self.options = options
        self.metrics = SoundMetrics(registry)
        self._runtime: SoundRuntime | None = None
        self._load_lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="soundweaver")
        self._waiting = 0
        self.files: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    @property
    def model_name(self) -> str:
        """The id requests name (``model``): the configured model's name, or its directory's."""
        return Path(self.options.model).name

    def runtime(self) -> SoundRuntime:
        """The model, judge and policy, loaded once (on the worker thread, off the event loop)."""
        with self._load_lock:
            if self._runtime is None:
                o = self.options
                model = load_sound_model(_resolve(o.model))
                judges = Judges.load(_resolve(o.judges))
                self._runtime = SoundRuntime(model, judges, make_policy(o, model))
            return self._runtime

    def _generate(self, req: AudioGenerationRequest, on_step: StepCallback | None) -> GeneratedSound:
        rt = self.runtime()
        emb = rt.model.embed([req.prompt])[0]
        job = SoundJob(req.prompt, emb, req.duration, req.steps or rt.model.default_steps, req.seed, req.solver)
        load = min((self._waiting - 1) / QUEUE_FOR_FULL_LOAD, 1.0)  # the others waiting behind this one
        sound = rt.serve(job, load, on_step)
        m = self.metrics
        m.requests.labels("hit" if sound.hit else "miss").inc()
        m.latency.observe(sound.latency_s)
        m.steps_run.inc(sound.steps_run)
        m.steps_skipped.inc(sound.steps - sound.steps_run)
        m.quality.observe(sound.quality)
        m.entries.set(rt.policy.cache_entries())
        return sound

    def _refine_if_idle(self) -> None:
        if self.options.refine_when_idle and self._waiting == 0 and self._runtime is not None:
            try:
                if self._runtime.refine():
                    self.metrics.refinements.inc()
            except Exception:  # a failed refinement loses nothing: the entry stays as it was
                log.exception("refining a cached sound failed")

    async def generate(self, req: AudioGenerationRequest, on_step: StepCallback | None = None) -> GeneratedSound:
        loop = asyncio.get_running_loop()
        self._waiting += 1
        self.metrics.waiting.set(self._waiting)
        try:
            sound = await loop.run_in_executor(self._worker, self._generate, req, on_step)
        finally:
            self._waiting -= 1
            self.metrics.waiting.set(self._waiting)
        loop.run_in_executor(self._worker, self._refine_if_idle)  # after it, queued work first
        return sound

    def keep(self, file_id: str, data: bytes, content_type: str) -> None:
        self.files[file_id] = (data, content_type)
        while len(self.files) > self.options.files_kept:
            self.files.popitem(last=False)

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


def _resolve(name: str) -> Path:
    path = Path(name)
    return path if path.is_dir() else checkpoint_dir(name)
