"""Loading a Tempo length model says, in one warning line, that the file is unpickled."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cloud.tempo.length import PICKLE_WARNING, LengthBound
from edgeweave.data.traces import TraceRequest
from edgeweave.errors import ModelFileError

REQUESTS = [
    TraceRequest(arrival_s=float(i), prompt_tokens=100 + i, output_tokens=60 + (i * 37) % 200) for i in range(200)
]


def test_load_warns_that_the_file_runs_code(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = LengthBound.fit(REQUESTS, trees=2).save(tmp_path / "len.pkl")
    with caplog.at_level(logging.WARNING, logger="edgeweave.tempo"):
        LengthBound.load(path)
        with pytest.raises(ModelFileError):
            LengthBound.load(tmp_path / "missing.pkl")  # warned before anything is read
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"loading {path}: {PICKLE_WARNING}", f"loading {tmp_path / 'missing.pkl'}: {PICKLE_WARNING}"]
    assert "runs code: load only files you trust" in PICKLE_WARNING
