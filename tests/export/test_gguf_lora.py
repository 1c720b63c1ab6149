"""A LoRA adapter exported to GGUF runs in llama.cpp as it does in torch.

Tolerance: llama.cpp evaluates its own graph (ggml kernels, its own RoPE and softmax, fp32
accumulation in another order) and adds the adapter's delta at run time while torch runs the
merged weights; |logit diff| <= 2e-2 on logits spread over ~10-30, as for the base model in
tests/backends/test_parity.py (seen: 8e-3, against 5e-3 for the base model alone).  A wrong
layout shows up as diffs of 1 and more (B's q/k rows left unpermuted: 9).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

from device.backends.llamacpp_backend import LlamaCppBackend
from device.backends.torch_backend import TorchBackend, merge_adapter
from edgeweave.errors import ModelFileError
from edgeweave.export.cache import runtime_file
from edgeweave.export.gguf_lora import cached_gguf_lora, export_gguf_lora
from edgeweave.generation.chat import chat_prompt
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.lora import LoraAdapter
from tests.device.test_adapters import random_adapter

TOLERANCE = 2e-2


@pytest.fixture(scope="module")
def adapter_dir(device_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_checkpoint(device_checkpoint).config
    return random_adapter(cfg, seed=7, rank=8).save(tmp_path_factory.mktemp("smith") / "smith")


@pytest.fixture(scope="module")
def lora_file(adapter_dir: Path, device_checkpoint: Path) -> Path:
    return cached_gguf_lora(adapter_dir, load_checkpoint(device_checkpoint).config)


@pytest.fixture(scope="module")
def llama(device_checkpoint: Path, lora_file: Path) -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(runtime_file(device_checkpoint, "gguf"), n_threads=2, lora=lora_file)
    yield backend
    backend.close()


def test_gguf_lora_header_and_tensors(lora_file: Path, adapter_dir: Path) -> None:
    reader = gguf.GGUFReader(str(lora_file))
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("adapter.type").contents() == "lora"
    assert reader.get_field("adapter.lora.alpha").contents() == LoraAdapter.load(adapter_dir).config.alpha
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}  # ggml order: ne[0] first
    assert shapes["blk.0.attn_q.weight.lora_a"] == (128, 8)  # A [rank, in] -> ne [in, rank]
    assert shapes["blk.0.attn_k.weight.lora_b"] == (8, 64)  # B [out, rank] -> ne [rank, out]
    assert shapes["blk.5.ffn_down.weight.lora_a"] == (512, 8)
    assert len(shapes) == 6 * 7 * 2


def test_llamacpp_with_the_adapter_matches_torch_merged(
    llama: LlamaCppBackend, device_checkpoint: Path, adapter_dir: Path
) -> None:
    base = TorchBackend.load(device_checkpoint)
    merged = TorchBackend(merge_adapter(load_checkpoint(device_checkpoint), LoraAdapter.load(adapter_dir)))
    ids = chat_prompt(merged, "dim the kitchen lights to 30% and lock the front door")
    ref, got = merged.logits(ids), llama.logits(ids)
    diff = float(np.abs(got - ref).max())
    assert diff <= TOLERANCE, f"max |logit diff| {diff}"
    assert float(np.abs(base.logits(ids) - ref).max()) > 1.0  # the adapter really changes the model
    assert (got.argmax(-1) == ref.argmax(-1)).all()


def test_export_is_cached_by_adapter_bytes(lora_file: Path, adapter_dir: Path, device_checkpoint: Path) -> None:
    cfg = load_checkpoint(device_checkpoint).config
    assert cached_gguf_lora(adapter_dir, cfg) == lora_file
    changed = LoraAdapter.load(adapter_dir)
    a, b = changed.weights["model.layers.0.self_attn.q_proj"]
    changed.weights["model.layers.0.self_attn.q_proj"] = (a, b + 1.0)
    other = changed.save(adapter_dir.parent / "smith-v2")
    assert cached_gguf_lora(other, cfg) != lora_file


def test_adapter_for_another_model_is_refused(adapter_dir: Path, tmp_path: Path) -> None:
    from edgeweave.models.registry import resolve_checkpoint

    cloud = load_checkpoint(resolve_checkpoint("weave-home-cloud")).config
    with pytest.raises(ModelFileError):
        export_gguf_lora(LoraAdapter.load(adapter_dir), cloud, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
