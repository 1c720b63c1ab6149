"""LLM request traces: the Azure LLM inference trace 2023 (CC-BY 4.0, Patel et
al., Splitwise, ISCA 2024) and any CSV with the same columns
(``TIMESTAMP,ContextTokens,GeneratedTokens``)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edgeweave.errors import UsageError

AZURE_CONV = Path(__file__).resolve().parents[2] / "benchmarks" / "traces" / "azure_llm_2023_conv.csv"
CREDIT = "Azure LLM inference trace 2023 (conversation), CC-BY 4.0, Patel et al., Splitwise, ISCA 2024"
COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True)
class TraceRequest:
    arrival_s: float  # since the trace's first request
    prompt_tokens: int
    output_tokens: int


def csv_records(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """A trace file's rows as csv.DictReader gives them, once its header is known to hold
    ``columns``; a UsageError naming the file if it cannot be read or lacks one of them."""
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise UsageError(str(path), f"missing column(s) {', '.join(missing)} (need {', '.join(columns)})")
            return list(reader)
    except OSError as e:
        raise UsageError(str(path), f"cannot read trace ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(str(path), "not a text CSV file") from None


def load_trace(path: str | Path = AZURE_CONV) -> list[TraceRequest]:
    path = Path(path)
    records = csv_records(path, COLUMNS)
    try:
        rows = [
            (datetime.fromisoformat(r["TIMESTAMP"][:26]), int(r["ContextTokens"]), int(r["GeneratedTokens"]))
            for r in records
        ]
    except (ValueError, TypeError) as e:
        raise UsageError(str(path), f"bad row ({e})") from None
    if not rows:
        raise UsageError(str(path), "no requests")
    t0 = min(r[0] for r in rows)
    return sorted(
        (TraceRequest((ts - t0).total_seconds(), max(1, ctx), max(1, gen)) for ts, ctx, gen in rows),
        key=lambda r: r.arrival_s,
    )


class TraceWriter:
    """Appends served requests to a CSV in the trace's own columns (a request log is a trace)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.write_text(",".join(COLUMNS) + "\n")

    def append(self, when: datetime, prompt_tokens: int, output_tokens: int) -> None:
        with self.path.open("a") as fh:
            fh.write(f"{when.isoformat(sep=' ')},{prompt_tokens},{output_tokens}\n")
