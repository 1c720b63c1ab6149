"""Where benchmarks write: ``benchmarks/results/NAME.json`` with a flat ``summary``."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

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
