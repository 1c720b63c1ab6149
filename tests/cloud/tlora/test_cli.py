"""``edgeweave tlora submit|list|events|cancel`` against a live cloud with ``[cloud.tlora]``: a tiny
job submitted with ``--wait`` trains to success; bad input is one line and exit code 2."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import edgeweave.cli as edgeweave_cli
from tests.cloud.tlora.test_api import KEY, LiveCloud

ROOT = Path(__file__).resolve().parents[3]
ENTRY = "cloud.tlora.cli:add_verbs"
TINY = ["--rank", "4", "--batch-size", "2", "--steps", "3", "--train-size", "8"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    live = LiveCloud(tmp_path_factory.mktemp("tlora-cli"))
    yield live
    live.close()


@pytest.fixture(autouse=True)
def tlora_verbs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``tlora`` verbs as pyproject.toml registers them, also where the installed metadata is
    older than this checkout (an editable install reads entry points from its install time)."""
    installed = edgeweave_cli.entry_points

    def with_tlora(group: str) -> list[EntryPoint]:
        return [*(e for e in installed(group=group) if e.name != "tlora"), EntryPoint("tlora", ENTRY, group)]

    monkeypatch.setattr(edgeweave_cli, "entry_points", with_tlora)


def run(cloud: LiveCloud, *argv: str) -> int:
    return edgeweave_cli.main(["tlora", argv[0], "--url", cloud.url, "--api-key", KEY, *argv[1:]])


def test_pyproject_registers_the_verbs() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["edgeweave.cli"]
    assert scripts["tlora"] == ENTRY


def test_submit_wait_list_events(cloud: LiveCloud, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cloud, "submit", "--suffix", "cli-house", "--household-seed", "1", *TINY, "--wait") == 0
    out = capsys.readouterr().out
    assert "succeeded after 3 of 3 steps" in out and "weave-home-device:cli-house" in out
    job_id = out.split()[0]
    assert run(cloud, "list") == 0
    assert job_id in capsys.readouterr().out
    assert run(cloud, "events", job_id) == 0
    assert "train_loss" in capsys.readouterr().out
    assert run(cloud, "cancel", job_id) == 2  # it already succeeded
    assert "cannot be cancelled" in capsys.readouterr().err


def test_examples_file_and_cancel(cloud: LiveCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    examples = tmp_path / "ex.jsonl"
    examples.write_text('{"prompt": "movie mode", "completion": "[]"}\n\n{"prompt": "bedtime", "completion": "[]"}\n')
    assert run(cloud, "submit", "--suffix", "cli-file", "--examples", str(examples), "--steps", "100000") == 0
    job_id = capsys.readouterr().out.split()[0]
    assert run(cloud, "cancel", job_id) == 0
    assert cloud.wait(job_id).status == "cancelled"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["submit", "--suffix", "x", "--household-seed", "1", "--rank", "2"], "--rank"),
        (["submit", "--suffix", "x", "--household-seed", "1", "--target-modules", "q_proj,nope"], "--target-modules"),
        (["submit", "--suffix", "Bad Name", "--household-seed", "1"], "--suffix"),
        (["submit", "--suffix", "x", "--household-seed", "1", "--model", "weave-home-cloud"], "--model"),
        (["submit", "--suffix", "x", "--examples", "/nonexistent.jsonl"], "--examples"),
        (["submit", "--suffix", "x", "--examples", "BAD_FILE"], "--examples"),
        (["events", "ftjob-unknown"], "job_id"),
        (["events", "not-a-job"], "job_id"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    cloud: LiveCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok", "completion": "[]"}\n{"prompt": "no completion"}\n')
    argv = [str(bad) if a == "BAD_FILE" else a for a in argv]
    try:
        code = run(cloud, *argv)
    except SystemExit as e:  # argparse's own refusals exit at once
        code = int(str(e.code))
    assert code == 2
    err = capsys.readouterr().err
    assert flag.lstrip("-").replace("-", "_") in err.replace("-", "_") and len(err.strip().splitlines()) == 1


def test_an_unreachable_cloud_names_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert edgeweave_cli.main(["tlora", "list", "--url", "http://127.0.0.1:9"]) == 2
    assert "--url" in capsys.readouterr().err
