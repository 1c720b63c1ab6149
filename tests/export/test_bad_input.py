"""Bad model files and arguments: one line on stderr, exit 2, nothing left behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest

from edgeweave.fileio import atomic_output
from tests.cli import run_cli


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeweave")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def no_leftovers(directory: Path) -> bool:
    return not any(p.name.endswith(".partial") for p in directory.iterdir())


@pytest.fixture
def broken_checkpoint(tmp_path: Path, device_checkpoint: Path) -> Path:
    ck = tmp_path / "broken"
    shutil.copytree(device_checkpoint, ck)
    (ck / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    return ck


def test_missing_model_file(tmp_path: Path) -> None:
    out = tmp_path / "out.gguf"
    proc = run_cli("export", "--to", "gguf", str(tmp_path / "nope"), str(out))
    assert_one_line_error(proc, str(tmp_path / "nope"), "no such file")
    assert not out.exists()


def test_checkpoint_without_config(tmp_path: Path) -> None:
    (tmp_path / "ck").mkdir()
    out = tmp_path / "out.onnx"
    proc = run_cli("export", "--to", "onnx", str(tmp_path / "ck"), str(out))
    assert_one_line_error(proc, "config.json is missing")
    assert not out.exists()


def test_corrupt_weights(tmp_path: Path, broken_checkpoint: Path) -> None:
    out = tmp_path / "out.pte"
    proc = run_cli("export", "--to", "pte", str(broken_checkpoint), str(out))
    assert_one_line_error(proc, "model.safetensors", "corrupt")
    assert not out.exists() and no_leftovers(tmp_path)


def test_unknown_export_target(tmp_path: Path) -> None:
    out = tmp_path / "out.tflite"
    proc = run_cli("export", "--to", "tflite", "weave-home-device", str(out))
    assert_one_line_error(proc, "--to", "tflite")
    assert not out.exists()


def _write_gguf(path: Path, arch: str) -> None:
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_of_unsupported_architecture(tmp_path: Path) -> None:
    path = tmp_path / "mamba.gguf"
    _write_gguf(path, "mamba")
    proc = run_cli("generate", "hi", "--backend", "llamacpp", "--model", str(path))
    assert_one_line_error(proc, str(path), "unsupported GGUF architecture 'mamba'")


@pytest.mark.parametrize(
    ("backend", "name", "content"),
    [
        ("llamacpp", "trunc.gguf", b"GGUF\x03\x00\x00\x00"),
        ("llamacpp", "text.gguf", b"hello world, not a model"),
        ("executorch", "bad.pte", b"\x00" * 64),
    ],
)
def test_corrupt_runtime_files(tmp_path: Path, backend: str, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    proc = run_cli("generate", "hi", "--backend", backend, "--model", str(path))
    assert_one_line_error(proc, str(path))


def test_bad_sampling_argument() -> None:
    proc = run_cli("generate", "hi", "--temperature", "-1")
    assert_one_line_error(proc, "temperature")


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "x.bin"
    with pytest.raises(RuntimeError), atomic_output(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
