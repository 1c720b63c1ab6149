"""Real Hugging Face checkpoint layout, end to end: a miniature Llama-3-style and
Qwen2-style checkpoint (random weights, a byte-level BPE tokenizer.json trained
here with the same pre-tokenizer regexes as the real ones) goes through the same
export path as weave-home, and llama.cpp agrees with torch on tokens and logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from device.backends.executorch_backend import ExecuTorchBackend
from device.backends.llamacpp_backend import LlamaCppBackend
from device.backends.torch_backend import TorchBackend
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.checkpoint import save_checkpoint
from edgeweave.models.config import ModelConfig
from edgeweave.models.hf_tokenizer import load_tokenizer
from edgeweave.models.llama import Transformer
from edgeweave.models.tokenizer import ChatMessage
from tests.cli import run_cli

_WORDS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
_REST = r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SPLIT = {"qwen2": _WORDS + r"\p{N}" + _REST, "llama": _WORDS + r"\p{N}{1,3}" + _REST}
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "dim the kitchen lights to 30% and lock the front door",
    "The quick brown fox jumps over the lazy dog. It's 12345 o'clock!",
    "set the bedroom thermostat to 21 degrees, then play some jazz",
] * 20
SAMPLES = ["lock the front door", "It's 2026 and the lights are ON", "  spaces\tand\nnewlines  ", "héllo wörld ✓"]


def _write_tokenizer(directory: Path, arch: str) -> int:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT[arch]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(directory / "tokenizer.json"))
    config = {"eos_token": "<|im_end|>", "bos_token": None, "chat_template": TEMPLATE, "add_bos_token": False}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return tok.get_vocab_size()


@pytest.fixture(scope="module")
def hf_checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    arch = request.param
    directory = tmp_path_factory.mktemp(f"hf-{arch}")
    vocab = _write_tokenizer(directory, arch)
    cfg = ModelConfig(
        vocab_size=vocab + 13,  # real models pad the embedding past the tokenizer
        dim=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        ffn_dim=128,
        max_seq_len=128,
        rope_theta=1e6 if arch == "qwen2" else 5e5,
        norm_eps=1e-6,
        arch=arch,  # type: ignore[arg-type]
        qkv_bias=arch == "qwen2",
        tie_embeddings=arch == "qwen2",
    )
    torch.manual_seed(3)
    model = Transformer(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    save_checkpoint(model, directory, dtype=torch.float32)
    return directory


def _export(checkpoint: Path, target: str, out: Path) -> Path:
    proc = run_cli("export", "--to", target, str(checkpoint), str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("hf_checkpoint", ["llama", "qwen2"], indirect=True)
def test_gguf_export_agrees_with_torch(hf_checkpoint: Path, tmp_path: Path) -> None:
    reference = TorchBackend.load(hf_checkpoint)
    llama = LlamaCppBackend(_export(hf_checkpoint, "gguf", tmp_path / "model.gguf"))
    try:
        for text in SAMPLES:
            assert llama.tokenizer.encode(text) == reference.tokenizer.encode(text), text
            assert llama.tokenizer.decode(reference.tokenizer.encode(text)) == text
        messages = [ChatMessage("user", "dim the kitchen lights")]
        ids = reference.tokenizer.render_chat(messages)
        assert llama.tokenizer.render_chat(messages) == ids
        assert ids[0] == 1 and ids.count(2) == 1  # <|im_start|> and <|im_end|> parsed as specials
        ref, got = reference.logits(ids), llama.logits(ids)
        assert got.shape[1] >= ref.shape[1] - 13
        assert float(np.abs(got[:, : ref.shape[1]] - ref).max()) < 2e-2
        params = SamplingParams(max_tokens=16, ignore_eos=True)
        assert llama.generate(ids, params).token_ids == reference.generate(ids, params).token_ids
    finally:
        llama.close()


@pytest.mark.parametrize("hf_checkpoint", ["llama", "qwen2"], indirect=True)
def test_gguf_loads_back_into_the_torch_model_exactly(hf_checkpoint: Path, tmp_path: Path) -> None:
    # f32 export -> load_gguf: the same parameters bit for bit (llama's rotary rows un-permuted, qwen2's
    # biases and tied head kept), and the vocabulary rebuilt from the file tokenizes as tokenizer.json does
    from edgeweave.models.gguf_checkpoint import load_gguf

    reference = TorchBackend.load(hf_checkpoint)
    model, tokenizer = load_gguf(_export(hf_checkpoint, "gguf", tmp_path / "model.gguf"))
    original = reference.model.state_dict()
    assert model.config == reference.model.config.with_(tokenizer=None)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    for text in SAMPLES:
        assert tokenizer.encode(text) == reference.tokenizer.encode(text), text
    messages = [ChatMessage("user", "dim the kitchen lights")]
    assert tokenizer.render_chat(messages) == reference.tokenizer.render_chat(messages)
    assert tokenizer.stop_ids == reference.tokenizer.stop_ids


# The ExecuTorch export of a real checkpoint is the slow one (~20 s an architecture): both run in
# `make test-all`; `make test` keeps the ExecuTorch export of the weave-home models (tests/backends, the
# same exporter) and both real layouts through torch and GGUF above.
@pytest.mark.parametrize(
    "hf_checkpoint", [pytest.param(a, marks=pytest.mark.slow) for a in ("llama", "qwen2")], indirect=True
)
def test_executorch_export_agrees_with_torch(hf_checkpoint: Path, tmp_path: Path) -> None:
    reference = TorchBackend.load(hf_checkpoint)
    pte = _export(hf_checkpoint, "pte", tmp_path / "model.pte")
    et = ExecuTorchBackend(pte, load_tokenizer(hf_checkpoint))
    ids = reference.tokenizer.render_chat([ChatMessage("user", "lock the front door")])
    np.testing.assert_allclose(et.logits(ids), reference.logits(ids), atol=1e-3)
    params = SamplingParams(max_tokens=12, ignore_eos=True)
    assert et.generate(ids, params).token_ids == reference.generate(ids, params).token_ids
