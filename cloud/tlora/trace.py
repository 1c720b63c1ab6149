"""Job arrivals for tLoRA (arXiv 2602.07263) from a cluster trace: the Pollux workload
(``pollux_jobs_workload1.csv``: 160 training jobs of a shared GPU cluster over about 7.7 hours;
Qiao et al., "Pollux: Co-adaptive Cluster Scheduling for Goodput-Optimized Deep Learning", OSDI
2021; petuum/adaptdl, benchmark/workloads/workload-1.csv, Apache-2.0) or any CSV with its columns
``name,time,application,num_replicas,batch_size``.

The trace's jobs train vision, speech and recommendation models; here each becomes one
household's LoRA job.  The mapping (:func:`job_class`) keeps what a trace row says about a job's
size and works for any application name, seen or not:

- adapter rank from the job's scale, ``num_replicas``: ``4 * 2**floor(log2(replicas) / 1.5)``,
  clamped to 4..64 (1-2 replicas -> 4, 4-6 -> 8, 8-16 -> 16, 24-48 -> 32, 64+ -> 64);
- batch size from the trace's (global) ``batch_size``: ``2**floor(log2(batch) / 4)``, clamped
  to 2..8 (32-160 -> 2, 256-3200 -> 4, 4096+ -> 8);
- dataset size from the application's name by a stable hash (SHA-256, not Python's salted
  ``hash``): one of 32, 64, 128 or 256 examples, so every job of one application has the same
  dataset size and an unseen application gets one too; one epoch;
- slowdown bound: 1.5, or 2.0 for jobs of 8 or more replicas (large jobs were the patient ones);
- arrival: the row's ``time`` minus the first row's, divided by a time-compression factor.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from edgeweave.data.traces import csv_records
from edgeweave.errors import UsageError

CREDIT = (
    "Pollux workload-1 job arrivals (Qiao et al., Pollux, OSDI 2021; petuum/adaptdl"
    " benchmark/workloads/workload-1.csv, Apache-2.0)"
)
COLUMNS = ("name", "time", "application", "num_replicas", "batch_size")
FILE = "pollux_jobs_workload1.csv"
_ROOT = Path(__file__).resolve().parents[2]
# read in place from the shared traces beside the project, else from a copy in benchmarks/traces
_PLACES = (_ROOT.parent / "shared" / "traces" / FILE, _ROOT / "benchmarks" / "traces" / FILE)
POLLUX = next((p for p in _PLACES if p.is_file()), _PLACES[0])
DATASET_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class TraceJob:
    name: str
    time_s: float  # since the trace's first job, uncompressed
    application: str
    num_replicas: int
    batch_size: int


@dataclass(frozen=True)
class JobClass:
    """What a trace job becomes: one household's LoRA job."""

    household: str  # a name the household generator and the API accept
    seed: int
    rank: int
    batch_size: int
    n_examples: int
    slowdown_bound: float


def load_jobs(path: str | Path = POLLUX) -> list[TraceJob]:
    """The trace's jobs in arrival order; UsageError naming the file and row if it is not one."""
    path = Path(path)
    jobs = []
    for line, row in enumerate(csv_records(path, COLUMNS), start=2):
        try:
            job = TraceJob(
                row["name"].strip(),
                float(row["time"]),
                row["application"].strip(),
                int(row["num_replicas"]),
                int(row["batch_size"]),
            )
        except (ValueError, TypeError, AttributeError) as e:
            raise UsageError(str(path), f"line {line}: bad row ({e})") from None
        if not job.name or not job.application:
            raise UsageError(str(path), f"line {line}: empty name or application")
        if not (math.isfinite(job.time_s) and job.time_s >= 0):
            raise UsageError(str(path), f"line {line}: time must be a non-negative number (got {row['time']})")
        if job.num_replicas < 1 or job.batch_size < 1:
            raise UsageError(str(path), f"line {line}: num_replicas and batch_size must be at least 1")
        jobs.append(job)
    if not jobs:
        raise UsageError(str(path), "no jobs")
    t0 = min(j.time_s for j in jobs)
    return sorted((TraceJob(j.name, j.time_s - t0, j.application, j.num_replicas, j.batch_size) for j in jobs),
                  key=lambda j: (j.time_s, j.name))  # fmt: skip


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def household_name(trace_name: str) -> str:
    """A trace job's name as a household name (lower-case letters, digits, dashes; 40 at most)."""
    slug = re.sub(r"[^a-z0-9]+", "-", trace_name.lower()).strip("-")[:40].strip("-")
    return slug or f"job-{_stable(trace_name) % 10**8}"


def job_class(job: TraceJob) -> JobClass:
    """The documented mapping of the module docstring."""
    rank = min(64, max(4, 4 * 2 ** math.floor(math.log2(job.num_replicas) / 1.5)))
    batch = min(8, max(2, 2 ** math.floor(math.log2(job.batch_size) / 4)))
    n_examples = DATASET_SIZES[_stable(job.application) % len(DATASET_SIZES)]
    bound = 2.0 if job.num_replicas >= 8 else 1.5
    return JobClass(household_name(job.name), _stable(job.name) % 2**31, rank, batch, n_examples, bound)


def arrivals_s(jobs: list[TraceJob], compression: float) -> list[float]:
    """Each job's arrival in seconds of the run, the trace's time divided by ``compression``."""
    if not (math.isfinite(compression) and compression > 0):
        raise UsageError("--compression", f"must be a positive number (got {compression})")
    return [j.time_s / compression for j in jobs]
