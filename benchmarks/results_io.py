"""What every benchmark shares: its command line (``--quick``, ``--trace``) and where it
writes (``benchmarks/results/NAME.json`` with a flat ``summary``, beside the benchmark's PNG).

``benchmarks/results/`` is untracked (``.gitignore``), so a run never overwrites a committed
file; the full runs the documentation quotes are kept in ``docs/results/``."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from edgeweave.data.traces import AZURE_CONV

RESULTS = Path(__file__).parent / "results"


def save_result(name: str, quick: bool, summary: dict[str, Any], **details: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {
        "benchmark": name,
        "quick": quick,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "summary": summary,
        **details,
    }
    path.write_text(json.dumps(body, indent=2))
    return path


def parser(doc: str, quick_help: str, trace: bool = False) -> argparse.ArgumentParser:
    """``--quick`` (same code path, a smaller workload) and, for trace-driven ones, ``--trace``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"{quick_help}; same code path")
    if trace:
        ap.add_argument("--trace", default=str(AZURE_CONV), help="CSV with TIMESTAMP,ContextTokens,GeneratedTokens")
    return ap
