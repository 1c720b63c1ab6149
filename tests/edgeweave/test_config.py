"""`edgeweave config check`: valid files pass; every problem of a bad file is reported at once."""

from __future__ import annotations

from pathlib import Path

from edgeweave.cluster.cluster_files import LocalDevice, cloud_toml, coordinator_toml, device_toml
from edgeweave.config import CloudServerConfig
from tests.cli import run_cli

SECRET = "correct-horse-battery-staple-42"


def test_generated_files_are_valid(tmp_path: Path) -> None:
    dev = tmp_path / "dev.toml"
    dev.write_text(device_toml(LocalDevice("pi-1", "pi", "llamacpp", threads=1), SECRET))
    co = tmp_path / "co.toml"
    co.write_text(coordinator_toml(SECRET, "ew-key", static=("http://127.0.0.1:9",)))
    for path, role in ((dev, "device"), (co, "coordinator")):
        out = run_cli("config", "check", str(path))
        assert out.returncode == 0, out.stderr
        assert f"ok ({role})" in out.stdout


def test_every_problem_is_reported_at_once_and_the_secret_never(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f"""
[cluster]
secret = "{SECRET}"

[device]
id = "bad id!"
kind = "toaster"
port = 70000
colour = "blue"

[[device.models]]
model = "no-such-model"
backend = "torch"
max_queue = -1

[coordinator]
heartbeat_s = 0
down_after_missed = 4
remove_after_missed = 2
"""
    )
    out = run_cli("config", "check", str(bad))
    assert out.returncode == 2
    err = out.stderr
    for field in (
        "device.id",
        "device.kind",
        "device.port",
        "device.colour",
        "device.models[0].model" if "models[0]" in err else "device.models.0.model",
        "max_queue",
        "coordinator.heartbeat_s",
    ):
        assert field in err, (field, err)
    assert "problem(s)" in err and "Traceback" not in err
    assert SECRET not in err + out.stdout


def test_short_secret_both_secrets_and_bad_toml(tmp_path: Path) -> None:
    short = tmp_path / "short.toml"
    short.write_text('[cluster]\nsecret = "qqqzz"\n[coordinator]\n')
    out = run_cli("config", "check", str(short))
    assert out.returncode == 2 and "at least 16 characters" in out.stderr
    assert "qqqzz" not in out.stderr  # the secret value is not echoed
    broken = tmp_path / "broken.toml"
    broken.write_text("[cluster\nsecret = 1")
    out = run_cli("config", "check", str(broken))
    assert out.returncode == 2 and "not valid TOML" in out.stderr
    out = run_cli("config", "check", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "missing.toml" in out.stderr
    # a role the file lacks
    coordinator_only = tmp_path / "co.toml"
    coordinator_only.write_text(coordinator_toml(SECRET, "ew-key"))
    out = run_cli("device", "serve", "--config", str(coordinator_only))
    assert out.returncode == 2 and "needs a [device] table" in out.stderr


def test_runtime_file_must_match_backend(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    cfg = tmp_path / "dev.toml"
    cfg.write_text(device_toml(LocalDevice("d", "pi", "torch", model=str(gguf)), SECRET))
    out = run_cli("config", "check", str(cfg))
    assert out.returncode == 2 and "needs backend 'llamacpp'" in out.stderr


def test_cloud_files_need_no_cluster_secret_and_name_bad_engine_options(tmp_path: Path) -> None:
    good = tmp_path / "cloud.toml"
    good.write_text(cloud_toml("weave-home-cloud", "ew-key"))
    out = run_cli("config", "check", str(good))
    assert out.returncode == 0 and "ok (cloud)" in out.stdout, out.stderr
    bad = tmp_path / "bad-cloud.toml"
    bad.write_text(
        '[cloud]\nmodel = "weave-home-clod"\n\n[cloud.engine]\nkv_cache_mb = 0\npreemption = "drop"\ndevice = "tpu"\n'
        'policy = "random"\nlength_model = "no-such-model.pkl"\n'
    )
    out = run_cli("config", "check", str(bad))
    assert out.returncode == 2
    fields = ("model", *(f"engine.{f}" for f in ("kv_cache_mb", "preemption", "device", "policy", "length_model")))
    for field in (f"cloud.{f}" for f in fields):
        assert field in out.stderr, out.stderr
    out = run_cli("cloud", "serve", "--config", str(bad))
    assert out.returncode == 2 and "cloud.engine.preemption" in out.stderr


def test_disco_settings_are_checked_field_by_field(tmp_path: Path) -> None:
    good = tmp_path / "co.toml"
    good.write_text(coordinator_toml(SECRET, "ew-key", disco='constrained = "device"\nbudget = 0.3\n'))
    out = run_cli("config", "check", str(good))
    assert out.returncode == 0, out.stderr
    bad = tmp_path / "bad-co.toml"
    bad.write_text(coordinator_toml(SECRET, "ew-key", disco='constrained = "phone"\nbudget = 1.5\nreading_tok_s = 0\n'))
    out = run_cli("config", "check", str(bad))
    assert out.returncode == 2
    for field in ("constrained", "budget", "reading_tok_s"):
        assert f"coordinator.disco.{field}" in out.stderr, out.stderr


def test_the_cloud_embedder_defaults_to_minilm_and_none_turns_it_off() -> None:
    assert CloudServerConfig(model="weave-home-cloud").embedder == "all-minilm-l6-v2"
    assert CloudServerConfig(model="weave-home-cloud", embedder="none").embedder is None  # TOML has no null
