"""``export --to safetensors``: a Hugging Face checkpoint directory with normal file permissions and
the tokenizer files a Hugging Face consumer loads; and ``--dtype`` refused where a target ignores it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from edgeweave.export.safetensors_export import byte_tokenizer_json
from edgeweave.models.checkpoint import load_checkpoint
from edgeweave.models.hf_tokenizer import HFTokenizer, load_tokenizer
from edgeweave.models.tokenizer import ByteTokenizer
from tests.cli import run_cli
from tests.export.test_bad_input import assert_one_line_error

SAMPLES = ["lock the back door", "héllo wörld ✓ 🤖", "  spaces\tand\nnewlines  ", "<0x41> is not a byte token"]


def normal_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def export_safetensors(model: str, out: Path) -> Path:
    proc = run_cli("export", "--to", "safetensors", model, str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_weave_home_export_is_a_readable_hf_directory_with_its_tokenizer(tmp_path: Path) -> None:
    out = export_safetensors("weave-home-device", tmp_path / "hf")
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == dict.fromkeys(names, normal_mode())

    byte = ByteTokenizer()
    hf = Tokenizer.from_file(str(out / "tokenizer.json"))
    for text in SAMPLES:
        ids = hf.encode(text, add_special_tokens=False).ids
        assert ids == byte.encode(text)
        assert hf.decode(ids) == text
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == ByteTokenizer.CHAT_TEMPLATE
    assert isinstance(load_tokenizer(out), ByteTokenizer)  # edgeweave reads config.json's edgeweave_tokenizer
    load_checkpoint(out)


def test_a_hugging_face_checkpoint_keeps_its_tokenizer_files(tmp_path: Path, device_checkpoint: Path) -> None:
    ck = tmp_path / "hf-in"
    shutil.copytree(device_checkpoint, ck)
    config = json.loads((ck / "config.json").read_text())
    del config["edgeweave_tokenizer"]  # now a plain HF checkpoint: the tokenizer comes from its files
    (ck / "config.json").write_text(json.dumps(config))
    (ck / "tokenizer.json").write_text(byte_tokenizer_json())
    (ck / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>", "chat_template": "{{ 'x' }}"}))
    (ck / "special_tokens_map.json").write_text(json.dumps({"eos_token": "</s>"}))

    out = export_safetensors(str(ck), tmp_path / "hf-out")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (out / name).read_bytes() == (ck / name).read_bytes()
        assert (out / name).stat().st_mode & 0o777 == normal_mode()
    tok = load_tokenizer(out)
    assert isinstance(tok, HFTokenizer)
    assert tok.encode(SAMPLES[1]) == ByteTokenizer().encode(SAMPLES[1])


@pytest.mark.parametrize("target", ["onnx", "pte"])
def test_f16_is_refused_where_the_target_exports_f32_only(tmp_path: Path, target: str) -> None:
    out = tmp_path / f"model.{target}"
    proc = run_cli("export", "--to", target, "--dtype", "f16", "weave-home-device", str(out))
    assert_one_line_error(proc, "--dtype", f"{target} exports f32 only")
    assert not out.exists()
