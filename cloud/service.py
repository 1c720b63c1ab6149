"""The cloud service behind any HTTP framework: its state (engine, metrics, Tempo's gain ledger)
and how one OpenAI request becomes an answer streaming out of the engine.

``[cloud]`` config in, a started :class:`CloudState` out (:func:`load_state`); each request is
checked against the model and started on the engine by :func:`open_answers`, one
:class:`EngineAnswer` per choice (OpenAI's ``n``: choice i seeded seed + i; the first prefills the
prompt, the others start once it has, sharing its blocks through the prefix cache), each yielding
the text deltas the OpenAI responders write (:mod:`edgeweave.serving.openai_serving`), each with
its token id (migration needs them) and, when asked, its logprob.  A request with ``uncertainty``
has choice 0 scored (:mod:`cloud.uq`) before its deltas end.  Requests may carry an ``slo``
(:mod:`edgeweave.wire.slo`); without one they are latency-sensitive with the configured
``default_slo``.  :func:`prefill` evaluates a context into the engine's prefix cache (one token
generated and discarded), so that a migrated answer resumed here later prefills only what came
after it (DiSCo's warm, :mod:`coordinator.disco`).
A LoRA adapter is a model id: ``<served name>:<adapter>`` (``weave-home-device:smith``) runs on the
base with the engine's adapter ``smith`` (:func:`adapter_of`); the configured adapters are loaded
at start and every one is listed by ``/v1/models`` (:func:`served_models`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from cloud.engine.async_engine import AsyncEngine, EngineFailed
from cloud.engine.engine import LLMEngine, TokenOutput
from cloud.policies import check_config, make_policy
from cloud.soundweaver.service import SoundService
from cloud.tempo.gain import GainLedger
from cloud.uq.runtime import AnswerScorer, UqRuntime
from edgeweave.config import CloudServerConfig, SoundOptions
from edgeweave.data.traces import TraceWriter
from edgeweave.errors import UsageError
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.lora import LoraAdapter
from edgeweave.models.tokenizer import ChatMessage
from edgeweave.operators.routes import OperatorService
from edgeweave.serving.http_errors import ApiError
from edgeweave.serving.openai_serving import Answer, AnswerFailed, Delta
from edgeweave.serving.tool_prompt import render_messages
from edgeweave.wire.openai_api import ChatCompletionRequest, CompletionRequest, chat_messages
from edgeweave.wire.protocol import PrefillRequest, PrefillResult
from edgeweave.wire.slo import SLO_TYPES, AnySlo, LatencySLO

if TYPE_CHECKING:
    from cloud.tlora.service import FineTuningService

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class CloudMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("edgeweave_cloud_requests", "API requests", ["path", "status"], registry=r)
        self.tokens = Counter("edgeweave_cloud_generated_tokens", "Tokens generated", registry=r)
        self.queue = Gauge("edgeweave_cloud_queue_depth", "Requests waiting for their first iteration", registry=r)
        self.running = Gauge("edgeweave_cloud_running", "Requests in the running batch", registry=r)
        self.swapped = Gauge("edgeweave_cloud_swapped", "Requests swapped out to host memory", registry=r)
        self.blocks_used = Gauge("edgeweave_cloud_kv_blocks_used", "KV cache blocks in use", registry=r)
        self.blocks_total = Gauge("edgeweave_cloud_kv_blocks_total", "KV cache blocks", registry=r)
        self.prefix_hits = Gauge(
            "edgeweave_cloud_prefix_hit_blocks", "KV blocks reused from the prefix cache", registry=r
        )
        self.preemptions = Gauge("edgeweave_cloud_preemptions", "Sequences preempted so far", registry=r)
        self.gain = Gauge("edgeweave_cloud_service_gain_tokens", "Useful tokens under their SLO", ["type"], registry=r)
        self.delivered = Gauge("edgeweave_cloud_delivered_tokens", "Tokens of judged requests", ["type"], registry=r)
        self.slo_met = Gauge("edgeweave_cloud_slo_met", "Requests (workflows) whose SLO was met", ["type"], registry=r)
        self.slo_judged = Gauge("edgeweave_cloud_slo_judged", "Requests (workflows) judged", ["type"], registry=r)
        self.ttft = Histogram(
            "edgeweave_cloud_ttft_seconds", "Time to first token", buckets=LATENCY_BUCKETS, registry=r
        )
        self.tbt = Histogram("edgeweave_cloud_tbt_seconds", "Time between tokens", buckets=LATENCY_BUCKETS, registry=r)


class CloudState:
    def __init__(
        self,
        engine: AsyncEngine,
        served_name: str,
        default_slo: LatencySLO | None = None,
        request_log: TraceWriter | None = None,
        embedder: str | None = None,
        sound: SoundOptions | None = None,
    ) -> None:
        self.engine = engine
        self.uq = UqRuntime(engine, embedder)  # /v1/embeddings and `uncertainty` scores
        self.request_log = request_log
        self.name = served_name
        self.metrics = CloudMetrics()
        self.default_slo = default_slo or LatencySLO()
        self.ledger = GainLedger()
        self.operators = OperatorService()  # Circinus operators placed on this tier
        self.tlora: FineTuningService | None = None  # the fine-tuning API, with [cloud.tlora] (cloud.server)
        # text-to-audio (SoundWeaver), loaded on its first request; None: no such routes
        self.sound = SoundService(sound, self.metrics.registry) if sound is not None and sound.enabled else None

    def metrics_text(self) -> bytes:
        """The Prometheus exposition, the engine's snapshot and the ledger's totals refreshed."""
        s, m = self.engine.snapshot, self.metrics
        m.queue.set(s.waiting)
        m.running.set(s.running)
        m.swapped.set(s.swapped)
        m.blocks_total.set(s.blocks_total)
        m.blocks_used.set(s.blocks_total - s.blocks_free)
        m.prefix_hits.set(s.prefix_hit_blocks)
        m.preemptions.set(s.preemptions)
        for kind in SLO_TYPES:
            m.gain.labels(kind).set(self.ledger.gain[kind])
            m.delivered.labels(kind).set(self.ledger.tokens[kind])
            m.slo_met.labels(kind).set(self.ledger.met[kind])
            m.slo_judged.labels(kind).set(self.ledger.judged[kind])
        return generate_latest(m.registry)


def load_state(cfg: CloudServerConfig) -> CloudState:
    """The engine for ``cfg`` (its policy resolved by name) and the state around it; not started."""
    check_config(cfg)
    llm = LLMEngine.load(cfg.model, cfg.engine, make_policy(cfg.engine))
    for ref in cfg.adapters:
        llm.add_adapter(ref.name, LoraAdapter.load(ref.path))
    engine = AsyncEngine(llm)
    log_to = TraceWriter(cfg.request_log) if cfg.request_log else None
    return CloudState(engine, cfg.name, cfg.default_slo, log_to, cfg.embedder, cfg.soundweaver)


def served_models(state: CloudState) -> list[str]:
    """Every model id served here: the base, then each adapter as ``<base>:<adapter>``."""
    return [state.name, *(f"{state.name}:{a}" for a in state.engine.engine.adapters)]


def adapter_of(state: CloudState, model: str | None) -> str | None:
    """The engine adapter a request's model id names (None: the base model); 404 naming ``model``
    for an id not served here."""
    if model is None or model == state.name:
        return None
    base, sep, adapter = model.partition(":")
    if sep and base == state.name and adapter in state.engine.engine.adapters:
        return adapter
    raise ApiError(
        404, f"model {model!r} is not served here (serving {', '.join(served_models(state))})", param="model"
    )


class EngineAnswer(Answer):
    """A request (one choice of it) streaming out of the engine, as text deltas; with a ``scorer``, its
    uncertainty is set after the last delta (before :meth:`deltas` ends)."""

    def __init__(
        self, state: CloudState, stream: AsyncIterator[TokenOutput], slo: AnySlo, scorer: AnswerScorer | None = None
    ) -> None:
        super().__init__(f"engine:{state.name}")
        self._stream = stream
        self._scorer = scorer
        self._metrics = state.metrics
        self._ledger = state.ledger
        self._log = state.request_log
        self._slo = slo
        self._first: TokenOutput | None = None
        self._started = time.perf_counter()
        self._token_times: list[float] = []
        self._ledger.arrive(slo, self._started)

    async def start(self) -> None:
        """Wait for the first token: bad input surfaces here, before any response is sent."""
        self._first = await anext(self._stream)
        self._token_times.append(time.perf_counter())
        self._metrics.ttft.observe(self._token_times[0] - self._started)

    async def deltas(self) -> AsyncIterator[Delta]:
        assert self._first is not None
        last = time.perf_counter()
        out: TokenOutput | None = self._first
        text: list[str] = []
        try:
            while out is not None:
                self.prompt_tokens = out.prompt_tokens
                self.completion_tokens = out.index + 1
                self._metrics.tokens.inc()
                if out.finish_reason:
                    self.finish_reason = out.finish_reason
                    self._ledger.finish(self._slo, self._started, self._token_times)
                    if self._log is not None:
                        self._log.append(datetime.now(), out.prompt_tokens, out.index + 1)
                yield Delta(out.text, out.token_id, out.logprob)
                text.append(out.text)
                if out.finish_reason:
                    if self._scorer is not None:
                        self.uncertainty = await self._scorer.result("".join(text))
                    return
                out = await anext(self._stream, None)
                now = time.perf_counter()
                self._token_times.append(now)
                self._metrics.tbt.observe(now - last)
                last = now
        except EngineFailed as e:
            raise AnswerFailed(str(e)) from None
        except UsageError as e:  # a scoring input the engine refused (a perturbation too long for the context)
            raise AnswerFailed(f"uncertainty: {e}") from None
        raise AnswerFailed("the engine ended the stream early")

    async def close(self) -> None:
        if self._scorer is not None:
            self._scorer.cancel()
        await self._stream.aclose()  # type: ignore[attr-defined]


def _prompt(
    state: CloudState, req: ChatCompletionRequest | CompletionRequest | PrefillRequest
) -> tuple[list[int], str]:
    tok = state.engine.engine.tokenizer
    if isinstance(req, ChatCompletionRequest):
        return render_messages(tok, chat_messages(req.messages), req.output_spec), "messages"
    if isinstance(req, PrefillRequest) and req.messages is not None:
        return tok.render_chat([ChatMessage(m.role, m.content) for m in req.messages]), "messages"
    assert req.prompt is not None  # the request models require one of prompt and messages
    if isinstance(req.prompt, str):
        return tok.encode(req.prompt, add_bos=True), "prompt"
    return list(req.prompt), "prompt"


def _fitting_prompt(
    state: CloudState, req: ChatCompletionRequest | CompletionRequest | PrefillRequest
) -> tuple[list[int], str, int, int]:
    """The request's prompt ids, the field they came from, the context they take (prompt + resume
    tokens) and the model's context length; 400 naming the field when they do not fit."""
    prompt, field_name = _prompt(state, req)
    ctx = state.engine.engine.context_length
    used = len(prompt) + len(req.resume_tokens)
    if used >= ctx:
        raise ApiError(
            400, f"{field_name}: {used} tokens do not fit the model's context of {ctx} tokens", param=field_name
        )
    return prompt, field_name, used, ctx


async def prefill(state: CloudState, req: PrefillRequest) -> PrefillResult:
    """Evaluate prompt + ``resume_tokens`` into the prefix cache: the engine runs the context with one
    token to generate, which is discarded.  ``cached_tokens`` is what the cache held before, counted
    from the engine's prefix-hit counter over the call (exact when no other request hits the cache
    meanwhile); the cloud's energy is not modelled (0: it is priced per token)."""
    adapter = adapter_of(state, req.model)
    prompt, _, used, _ = _fitting_prompt(state, req)
    blocks = state.engine.engine.blocks  # its counter is read, never changed, from this thread
    hits = blocks.hits
    started = time.perf_counter()
    stream = state.engine.generate(
        uuid.uuid4().hex, prompt, SamplingParams(max_tokens=1, temperature=0.0), req.resume_tokens, lora_adapter=adapter
    )
    async for _ in stream:
        pass
    block = blocks.block_size
    hit = max(blocks.hits - hits, 0) * block
    return PrefillResult(
        model=req.model or state.name,
        prompt_tokens=used,
        cached_tokens=min(hit, (used - 1) // block * block),
        prefill_s=time.perf_counter() - started,
        energy_j=0.0,
    )


async def open_answers(
    state: CloudState, req: ChatCompletionRequest | CompletionRequest, scorer: AnswerScorer | None = None
) -> list[EngineAnswer]:
    """Check ``req`` against the model and start its ``n`` choices on the engine (``scorer``: choice 0's)."""
    adapter = adapter_of(state, req.model)
    prompt, field_name, used, ctx = _fitting_prompt(state, req)
    room = ctx - used
    if req.max_tokens is not None and req.max_tokens > room:
        raise ApiError(
            400,
            f"max_tokens: {used} prompt tokens + {req.max_tokens} new tokens exceed the context of {ctx} tokens "
            f"(at most {room} new tokens)",
            param="max_tokens",
        )
    params = req.sampling(req.max_tokens or room)
    slo = req.slo or state.default_slo
    rid = uuid.uuid4().hex

    def choice(i: int) -> EngineAnswer:
        stream = state.engine.generate(
            f"{rid}-{i}", prompt, params.for_choice(i), req.resume_tokens, slo=slo, lora_adapter=adapter
        )
        return EngineAnswer(state, stream, slo, scorer if i == 0 else None)

    answers = [choice(0)]
    try:
        await answers[0].start()  # the prompt is in the prefix cache now: the other choices share its blocks
        answers += [choice(i) for i in range(1, req.n)]
        started = await asyncio.gather(*(a.start() for a in answers[1:]), return_exceptions=True)
        failed = next((e for e in started if isinstance(e, BaseException)), None)
        if failed is not None:
            raise failed
    except BaseException:
        for a in answers:
            await a.close()
        raise
    if scorer is not None:
        scorer.begin()
    return answers
