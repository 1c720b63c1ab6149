"""The one config file format for device daemons and the coordinator (TOML).

A file holds a ``[cluster]`` table (the join secret every member shares) and
a ``[device]`` table, a ``[coordinator]`` table, or both.  Everything is
validated at load by pydantic; :func:`load_config` reports every problem in
the file at once (``edgeweave config check FILE``).  Secrets are
``SecretStr``: they print as ``**********`` in reprs, logs and errors.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    DirectoryPath,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from edgeweave.errors import ConfigError, ModelFileError
from edgeweave.wire.slo import LatencySLO
from edgeweave.wire.uncertainty import UncertaintyRequest

DeviceKind = Literal["phone", "pi", "jetson", "laptop", "server"]
BackendKind = Literal["torch", "llamacpp", "executorch"]
MIN_SECRET_CHARS = 16


def _none_word(v: str | None) -> str | None:
    """TOML has no null: the word "none" turns an optional setting off."""
    return None if v == "none" else v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterConfig(_Strict):
    """The join secret: given inline or read from a file (one of the two)."""

    secret: SecretStr | None = None
    secret_file: Path | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> ClusterConfig:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret and secret_file")
        if self.secret_file is not None:
            try:
                text = self.secret_file.read_text().strip()
            except OSError as e:
                raise ValueError(f"secret_file {self.secret_file}: {e.strerror}") from None
            self.secret, self.secret_file = SecretStr(text), None
        assert self.secret is not None
        if len(self.secret.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"the secret must be at least {MIN_SECRET_CHARS} characters")
        return self

    def secret_bytes(self) -> bytes:
        assert self.secret is not None
        return self.secret.get_secret_value().encode()


class PowerModel(_Strict):
    """Linear CPU-utilisation power model, P = idle_w + (max_w - idle_w) * utilisation."""

    idle_w: float = Field(gt=0)
    max_w: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> PowerModel:
        if self.max_w < self.idle_w:
            raise ValueError("max_w must be at least idle_w")
        return self


# Typical whole-board figures (idle, all cores busy); override per device in the config.
DEFAULT_POWER: dict[str, PowerModel] = {
    "phone": PowerModel(idle_w=0.6, max_w=5.0),
    "pi": PowerModel(idle_w=2.7, max_w=6.4),  # Raspberry Pi 4B
    "jetson": PowerModel(idle_w=5.0, max_w=15.0),  # Orin Nano 15 W mode
    "laptop": PowerModel(idle_w=6.0, max_w=45.0),
    "server": PowerModel(idle_w=60.0, max_w=250.0),
}


def _model_exists(v: str) -> str:
    from edgeweave.models.registry import resolve_checkpoint

    try:
        resolve_checkpoint(v)
    except ModelFileError as e:
        raise ValueError(str(e)) from None
    return v


class AdapterRef(_Strict):
    """A LoRA adapter served beside its base model, as the model id ``<base name>:<name>``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")  # the household
    path: DirectoryPath  # a PEFT adapter directory (adapter_config.json + adapter_model.safetensors)


class ModelSpec(_Strict):
    model: str  # a model name (weave-home-device), a checkpoint directory, or a .gguf / .pte file
    backend: BackendKind
    served_name: str | None = None  # the name clients ask for (default: derived from `model`)
    threads: int | None = Field(default=None, ge=1, le=256)
    # KV-cache sequences decoded together in one batch (llama.cpp's parallel slots); each holds a
    # whole context (memory grows with it) and keeps its own prompt cache
    slots: int = Field(default=1, ge=1, le=64)
    max_queue: int = Field(default=4, ge=0, le=4096)  # requests waiting for a slot beyond the `slots` running
    adapters: list[AdapterRef] = Field(default_factory=list)  # each also served, as <name>:<adapter>

    _exists = field_validator("model")(_model_exists)

    @model_validator(mode="after")
    def _runtime_file_fits_backend(self) -> ModelSpec:
        needs = {".gguf": "llamacpp", ".pte": "executorch"}.get(Path(self.model).suffix)
        if needs and needs != self.backend:
            raise ValueError(f"{self.model} is a {Path(self.model).suffix} file: it needs backend {needs!r}")
        return self

    @property
    def name(self) -> str:
        if self.served_name:
            return self.served_name
        path = Path(self.model)
        return path.stem if path.suffix in (".gguf", ".pte") else path.name


class DeviceConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
    kind: DeviceKind
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)  # 0: any free port (announced over mDNS)
    advertise: bool = True
    interfaces: list[str] = Field(default_factory=lambda: ["127.0.0.1"])  # ["all"] for every interface
    power: PowerModel | None = None
    models: list[ModelSpec] = Field(min_length=1)
    # the sentence embedder of uncertainty scores (edgeweave.models.embedder.load_embedder: the bundled
    # MiniLM or a sentence-transformers directory), loaded on the first request that asks; None: refuse them
    embedder: str | None = "all-minilm-l6-v2"
    _none = field_validator("embedder")(_none_word)

    @model_validator(mode="after")
    def _unique_names(self) -> DeviceConfig:
        names = [m.name for m in self.models]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"models served twice under one name: {', '.join(sorted(dup))} (set served_name)")
        return self

    @property
    def power_model(self) -> PowerModel:
        return self.power or DEFAULT_POWER[self.kind]


class CloudEndpoint(_Strict):
    """An OpenAI-compatible server (our cloud engine, or any other)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    url: AnyHttpUrl  # base URL, e.g. http://gpu-box:8000/v1
    api_key: SecretStr | None = None
    models: list[str] = Field(min_length=1)
    extensions: bool = True  # an edgeweave cloud server: takes resume_tokens, ignore_eos, return_token_ids


class DiscoveryConfig(_Strict):
    mdns: bool = True
    interfaces: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    static: list[AnyHttpUrl] = Field(default_factory=list)  # device base URLs, for networks without multicast


class DiscoConfig(_Strict):
    """``[coordinator.disco]``: how chat answers are split between devices and the cloud (DiSCo)."""

    constrained: Literal["cloud", "device"] = "cloud"  # the tier whose spend the budget bounds
    budget: float = Field(default=0.5, ge=0.0, le=1.0)  # its share of the offered prompt tokens
    tail: float = Field(default=0.1, gt=0.0, le=1.0)  # device-constrained: budget spent on the TTFT tail first
    usd_per_prompt_token: float = Field(default=0.15e-6, ge=0.0)  # cloud price (GPT-4o-mini class)
    usd_per_output_token: float = Field(default=0.6e-6, ge=0.0)
    usd_per_joule: float = Field(default=1e-6, ge=0.0)  # device: battery wear (~$50 / 500 cycles of 15 Wh)
    default_joules_per_token: float = Field(default=0.5, gt=0.0)  # until a device reports its own
    reading_tok_s: float = Field(default=4.5, gt=0.0)  # the reader's pace: the buffer that hides a migration
    migrate: bool = True  # move answers mid-stream when it pays (failures and stalls move them regardless)
    stall_s: float = Field(default=10.0, gt=0.0)  # an endpoint silent this long mid-answer: the answer moves
    cloud_ttft_s: float = Field(default=0.5, gt=0.0)  # prior for the cloud's TTFT until measured
    device_prefill_tok_s: float = Field(default=100.0, gt=0.0)  # prior until a device reports its own


class EscalationConfig(_Strict):
    """``[coordinator.escalation]``: answer on a device, re-answer on the cloud when the answer is likely wrong."""

    # uncertainty: the score below (computed on the device) above `threshold`; token-entropy: move
    # mid-answer when the device's top-k entropy spikes; the rest are the baselines
    gate: Literal["uncertainty", "token-entropy", "length", "random", "always-device", "always-cloud"] = "uncertainty"
    uncertainty: UncertaintyRequest = Field(default_factory=UncertaintyRequest)
    threshold: float = 1.0  # uncertainty gate: escalate above it (calibrate with benchmarks/uq.py)
    rate: float = Field(default=0.5, ge=0.0, le=1.0)  # random gate: the share escalated
    seed: int | None = None  # random gate
    max_prompt_chars: int = Field(default=400, ge=0)  # length router: longer prompts go to the cloud
    token_entropy_threshold: float = Field(default=1.0, gt=0.0)  # nats, averaged over `window` tokens
    window: int = Field(default=4, ge=1, le=256)
    top_logprobs: int = Field(default=5, ge=2, le=20)  # alternatives the device sends per token


class CoordinatorConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    require_api_key: bool = True
    api_keys: list[SecretStr] = Field(default_factory=list)  # empty: one is generated and printed at start
    heartbeat_s: float = Field(default=1.0, gt=0.0, le=60.0)
    down_after_missed: int = Field(default=2, ge=1)
    remove_after_missed: int = Field(default=5, ge=1)
    request_timeout_s: float = Field(default=600.0, gt=0.0)
    max_body_mb: float = Field(default=8.0, gt=0.0, le=1024.0)
    placement: Literal["least-loaded"] = "least-loaded"
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig)
    cloud: list[CloudEndpoint] = Field(default_factory=list)
    disco: DiscoConfig = Field(default_factory=DiscoConfig)
    policy: Literal["disco", "escalation"] = "disco"  # how answers are placed (a request may ask `prefer: escalate`)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    embedder: str | None = "all-minilm-l6-v2"  # /v1/embeddings; "none": no such route
    _none = field_validator("embedder")(_none_word)

    @model_validator(mode="after")
    def _removal_after_down(self) -> CoordinatorConfig:
        if self.remove_after_missed < self.down_after_missed:
            raise ValueError("remove_after_missed must be at least down_after_missed")
        return self


class EngineOptions(_Strict):
    """The cloud engine's memory, batching and kernel settings."""

    block_size: int = Field(default=16, ge=1, le=1024)  # tokens per KV block
    kv_cache_mb: float = Field(default=256.0, gt=0.0)  # the paged KV cache's budget
    max_num_seqs: int = Field(default=64, ge=1, le=65536)
    max_batched_tokens: int = Field(default=512, ge=1)  # per iteration; longer prompts are prefilled in chunks
    preemption: Literal["recompute", "swap"] = "recompute"
    swap_space_mb: float = Field(default=256.0, ge=0.0)  # host memory for swapped-out blocks
    prefix_caching: bool = True
    attention: Literal["auto", "torch", "packed", "varlen"] = "auto"  # auto: packed on a GPU, torch on CPU
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"  # auto: float16 on a GPU
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")
    # the order requests run in: Tempo (SLO-aware, the default) or a baseline
    policy: Literal["tempo", "fcfs", "priority", "edf", "srtf", "las"] = "tempo"
    # Tempo's output-length model from `edgeweave tempo train-length`; without one a request's
    # max_tokens is its length bound.  The file is unpickled, which runs code: load only files you trust.
    length_model: FilePath | None = None


class RayOptions(_Strict):
    """Serve the engine as N Ray Serve replicas behind one route."""

    replicas: int = Field(default=2, ge=1, le=1024)
    cpus_per_replica: float = Field(default=1.0, gt=0.0)
    gpus_per_replica: float = Field(default=0.0, ge=0.0)
    address: str | None = None  # an existing Ray cluster; None starts a local one


class TloraOptions(_Strict):
    """``[cloud.tlora]``: the fine-tuning API (tLoRA): where jobs keep their checkpoints and
    adapters, and the workers their groups train on."""

    workdir: Path  # one directory per job: checkpoints, the finished adapter
    workers: int = Field(default=1, ge=1, le=1024)  # training workers (Ray actors with `ray`)
    threads_per_worker: int | None = Field(default=None, ge=1, le=256)
    ray: bool = False  # train each group in a Ray actor (a local Ray unless [cloud.ray] names one)
    serve_finished: bool = True  # a succeeded job's adapter is served by this engine at once


class SoundOptions(_Strict):
    """``[cloud.soundweaver]``: text-to-audio at ``/v1/audio/generations`` (SoundWeaver), loaded on the
    first request."""

    enabled: bool = True
    model: str = "weave-sound"  # a bundled sound model or a directory (ours, or a diffusers AudioLDM pipeline)
    judges: str = "weave-sound-judges"  # the online quality judge (bundled name or directory)
    policy: Literal["soundweaver", "soundweaver-lru", "nirvana", "none"] = "soundweaver"
    cache_entries: int = Field(default=1000, ge=1, le=1_000_000)
    half_life_s: float = Field(default=600.0, gt=0.0)
    refine_when_idle: bool = True
    files_kept: int = Field(default=64, ge=1, le=10_000)  # generated files kept for GET /v1/audio/files/{id}


class CloudServerConfig(_Strict):
    """``edgeweave cloud serve``: the engine behind an OpenAI-compatible API."""

    model: str  # a model name (weave-home-cloud) or a Hugging Face checkpoint directory
    served_name: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    require_api_key: bool = True
    api_keys: list[SecretStr] = Field(default_factory=list)  # empty: one is generated and printed at start
    max_body_mb: float = Field(default=8.0, gt=0.0, le=1024.0)
    engine: EngineOptions = Field(default_factory=EngineOptions)
    default_slo: LatencySLO = Field(default_factory=LatencySLO)  # for requests that send no `slo`
    request_log: Path | None = None  # append each finished request (trace CSV columns): Tempo's training data
    ray: RayOptions | None = None  # [cloud.ray]: scale out on Ray Serve instead of one process
    adapters: list[AdapterRef] = Field(default_factory=list)  # LoRA adapters served as <name>:<adapter>
    tlora: TloraOptions | None = None  # [cloud.tlora]: the fine-tuning API; without it, no such routes
    soundweaver: SoundOptions = Field(default_factory=SoundOptions)  # [cloud.soundweaver]: text-to-audio
    # /v1/embeddings and `uncertainty` scores: load_embedder's name (the bundled MiniLM or a model directory);
    # "none" (TOML has no null): neither
    embedder: str | None = "all-minilm-l6-v2"

    _exists = field_validator("model")(_model_exists)
    _none = field_validator("embedder")(_none_word)

    @property
    def name(self) -> str:
        return self.served_name or Path(self.model).name


class EdgeweaveConfig(_Strict):
    cluster: ClusterConfig | None = None  # devices and the coordinator need it
    device: DeviceConfig | None = None
    coordinator: CoordinatorConfig | None = None
    cloud: CloudServerConfig | None = None

    @model_validator(mode="after")
    def _has_a_role(self) -> EdgeweaveConfig:
        if self.device is None and self.coordinator is None and self.cloud is None:
            raise ValueError("the file needs a [device], [coordinator] or [cloud] table")
        if (self.device or self.coordinator) and self.cluster is None:
            raise ValueError("cluster: missing: [device] and [coordinator] need the [cluster] secret")
        return self


def _problems(e: ValidationError) -> list[str]:
    out = []
    for err in e.errors():
        where = ".".join(str(x) for x in err["loc"]) or "(file)"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{where}: {msg}")
    return out


def load_config(path: str | Path, role: Literal["device", "coordinator", "cloud"] | None = None) -> EdgeweaveConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(path, [e.strerror or str(e)]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, [f"not valid TOML: {e}"]) from None
    try:
        cfg = EdgeweaveConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(path, _problems(e)) from None
    if role is not None and getattr(cfg, role) is None:
        raise ConfigError(path, [f"{role}: missing: this command needs a [{role}] table"])
    return cfg
