"""Model configuration for the edgeweave Llama-architecture family.

One frozen dataclass describes every model the runtimes load: the two
weave-home presets trained by this repository and real Hugging Face Llama /
Qwen2 checkpoints.  It reads and writes the Hugging Face ``config.json`` shape,
so a weave-home checkpoint directory *is* a Hugging Face checkpoint directory
(plus one ``edgeweave_tokenizer`` key naming the byte tokenizer).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from edgeweave.errors import ModelFileError

Arch = Literal["llama", "qwen2"]
SUPPORTED_ARCHS: tuple[Arch, ...] = ("llama", "qwen2")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a decoder-only Llama-family transformer."""

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    qkv_bias: bool = False
    tie_embeddings: bool = False
    arch: Arch = "llama"
    head_dim_override: int | None = None
    tokenizer: str | None = None  # "byte-v1" for the edgeweave byte tokenizer

    def __post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.dim // self.n_heads

    def with_(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)

    # --- Hugging Face config.json -------------------------------------------------
    def to_hf_dict(self) -> dict[str, Any]:
        arch_class = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[self.arch]
        out: dict[str, Any] = {
            "architectures": [arch_class],
            "model_type": self.arch,
            "vocab_size": self.vocab_size,
            "hidden_size": self.dim,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "intermediate_size": self.ffn_dim,
            "max_position_embeddings": self.max_seq_len,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.norm_eps,
            "tie_word_embeddings": self.tie_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float16",
        }
        if self.arch == "llama":
            out["attention_bias"] = self.qkv_bias
        if self.head_dim_override:
            out["head_dim"] = self.head_dim_override
        if self.tokenizer:
            out["edgeweave_tokenizer"] = self.tokenizer
        return out

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> ModelConfig:
        model_type = d.get("model_type")
        if model_type not in SUPPORTED_ARCHS:
            raise ModelFileError(
                source, f"unsupported model_type {model_type!r} (supported: {', '.join(SUPPORTED_ARCHS)})"
            )
        scaling = d.get("rope_scaling")
        if scaling not in (None, {}) and (scaling or {}).get("rope_type", scaling.get("type")) != "default":
            raise ModelFileError(source, f"unsupported rope_scaling {scaling!r}")
        try:
            n_heads = int(d["num_attention_heads"])
            dim = int(d["hidden_size"])
            head_dim = d.get("head_dim")
            return cls(
                vocab_size=int(d["vocab_size"]),
                dim=dim,
                n_layers=int(d["num_hidden_layers"]),
                n_heads=n_heads,
                n_kv_heads=int(d.get("num_key_value_heads") or n_heads),
                ffn_dim=int(d["intermediate_size"]),
                max_seq_len=int(d.get("max_position_embeddings", 2048)),
                rope_theta=float(d.get("rope_theta", 10000.0)),
                norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                qkv_bias=model_type == "qwen2" or bool(d.get("attention_bias", False)),
                tie_embeddings=bool(d.get("tie_word_embeddings", False)),
                arch=model_type,
                head_dim_override=int(head_dim) if head_dim and int(head_dim) != dim // n_heads else None,
                tokenizer=d.get("edgeweave_tokenizer"),
            )
        except KeyError as e:
            raise ModelFileError(source, f"missing field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ModelFileError(source, f"invalid value: {e}") from None

    @classmethod
    def from_hf_dir(cls, directory: Path) -> ModelConfig:
        path = Path(directory) / "config.json"
        if not path.is_file():
            raise ModelFileError(str(directory), "not a checkpoint directory: config.json is missing")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFileError(str(path), f"cannot parse JSON ({e})") from None
        if not isinstance(data, dict):
            raise ModelFileError(str(path), "expected a JSON object")
        return cls.from_hf_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    """A named weave-home size: its shape and how it is trained."""

    name: str
    config: ModelConfig
    train_steps: int
    batch_size: int
    lr: float
    seed: int = 0
    corpus: Literal["smarthome", "agent-roles"] = "smarthome"  # edgeweave.data.smarthome / edgeweave.home.role_corpus
    init_from: str | None = None  # fine-tune this committed model instead of starting from scratch


def _byte_config(**kw: Any) -> ModelConfig:
    from edgeweave.models.tokenizer import ByteTokenizer

    kw.setdefault("max_seq_len", 512)
    return ModelConfig(vocab_size=ByteTokenizer.VOCAB_SIZE, tokenizer=ByteTokenizer.NAME, **kw)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "weave-home-device",
            _byte_config(dim=128, n_layers=6, n_heads=4, n_kv_heads=2, ffn_dim=512),
            train_steps=1200,
            batch_size=32,
            lr=3e-3,
        ),
        Preset(
            "weave-home-cloud",
            _byte_config(dim=256, n_layers=8, n_heads=8, n_kv_heads=4, ffn_dim=640),
            train_steps=900,
            batch_size=32,
            lr=1.5e-3,
        ),
        # the agent roles (edgeweave.home.role_corpus), fine-tuned from the weave-home models, whose
        # phrase -> call mapping they keep; a longer context for multi-turn tool use
        Preset(
            "weave-agent-device",
            _byte_config(dim=128, n_layers=6, n_heads=4, n_kv_heads=2, ffn_dim=512, max_seq_len=1536),
            train_steps=800,
            batch_size=8,
            lr=3e-3,
            corpus="agent-roles",
            init_from="weave-home-device",
        ),
        Preset(
            "weave-agent-cloud",
            _byte_config(dim=256, n_layers=8, n_heads=8, n_kv_heads=4, ffn_dim=640, max_seq_len=1536),
            train_steps=300,
            batch_size=8,
            lr=1.5e-3,
            corpus="agent-roles",
            init_from="weave-home-cloud",
        ),
    )
}
