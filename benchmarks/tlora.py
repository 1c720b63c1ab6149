"""tLoRA benchmark: households' LoRA jobs arriving online, trained together by tLoRA's scheduler
vs per-job PEFT (one after another; with the cores split) and FIFO co-location, all for real.

Workload: job arrivals of the Pollux workload-1 trace (Qiao et al., Pollux, OSDI 2021;
petuum/adaptdl, Apache-2.0) or any CSV of its columns (``--trace``), mapped by
:mod:`cloud.tlora.trace` to a household's LoRA job each (rank from the job's replicas, batch size
from its batch size, dataset size from its application; the household's corpus from
:mod:`edgeweave.data.households`), steps capped to fit this machine, arrival times compressed so
the jobs arrive over a third of what they would take one after another.

1. Fit the step-time model (:mod:`cloud.tlora.cost`) on real GroupTrainer steps measured here.
2. Train every job, on the same arrivals, five ways, each for real on the base weave-home-device:
   ``tlora`` (TloraRuntime + TloraScheduler), ``fifo_colocate`` (the same runtime with the
   mLoRA-style FIFO co-location, no capacity check, no slowdown bound), ``tlora_solo_fifo`` (the
   same runtime one job at a time: our execution path without grouping), ``peft_fifo`` (each job
   alone with the real PEFT library, one after another: :func:`cloud.tlora.solo.train_alone_peft`)
   and ``peft_split`` (each job alone with PEFT in its own process from its arrival, torch threads
   = cores / running jobs).  Throughput (samples/s over the makespan), JCT mean and p95 (arrival to
   adapter), cores' utilisation (CPU seconds of the run's processes over makespan x cores), each
   job's per-step loss in tLoRA against its PEFT solo run.
3. The simulator's prediction of the same runs on the fitted model (a check of the model; fitted on
   our path, so its solo runs predict ``tlora_solo_fifo``).
4. Each household's exact match on its held-out commands, base vs its tLoRA adapter
   (:func:`edgeweave.generation.evaluate.household_exact_match`).
5. The multi-LoRA serving ratio (H5's :func:`benchmarks.lora_serving.measure_multi_lora_serving`).

    python -m benchmarks.tlora [--quick] [--trace PATH]

``--quick``: 5 jobs of at most 8 steps, 3 households' accuracy (minutes on 2 quiet cores); the full
run: 16 jobs of at most 48 steps, every household.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import psutil
import torch

from benchmarks.results_io import RESULTS, parser, save_result
from cloud.tlora.baselines import FifoColocate, SoloFifo, SoloSplit
from cloud.tlora.cost import fit, measure, profile_groups, shape_of
from cloud.tlora.jobs import JobPlan, steps_for_epochs
from cloud.tlora.policy import Book, TloraScheduler, workers_of
from cloud.tlora.runtime import TloraRuntime
from cloud.tlora.simulator import Arrival, simulate
from cloud.tlora.solo import train_alone, train_alone_peft
from cloud.tlora.trace import CREDIT, POLLUX, TraceJob, job_class, load_jobs
from edgeweave.config import TloraOptions
from edgeweave.data import households
from edgeweave.errors import UsageError
from edgeweave.models.config import ModelConfig
from edgeweave.models.lora import LoraConfig
from edgeweave.models.registry import resolve_checkpoint

BASE = "weave-home-device"
LEARNING_RATE = 5e-3
CAPACITY_SAMPLES = 64  # a worker holds this many full-context samples per step (our choice)
LOAD_FRACTION = 1 / 3  # the jobs arrive over this fraction of their one-after-another duration
EVAL_PROMPTS = 20
# The trace's jobs are one epoch of their small corpora (<= max_steps steps): too short to change
# a household's answers.  The accuracy phase trains each evaluated household longer, alone on our
# path (its result equals the grouped run's, which the loss comparison above checks).
ACCURACY_STEPS = 96


@dataclass
class RunResult:
    """One system's real run over the jobs."""

    name: str
    submitted: dict[str, float] = field(default_factory=dict)  # unix seconds
    finished: dict[str, float] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)  # per step
    samples: int = 0
    cpu_s: float = 0.0
    cores: int = 1

    @property
    def jct_s(self) -> list[float]:
        return [self.finished[j] - self.submitted[j] for j in self.submitted]

    @property
    def makespan_s(self) -> float:
        return max(self.finished.values()) - min(self.submitted.values())

    def row(self) -> dict[str, float]:
        return {
            "throughput_samples_s": self.samples / self.makespan_s,
            "jct_mean_s": float(np.mean(self.jct_s)),
            "jct_p95_s": float(np.percentile(self.jct_s, 95)),
            "makespan_s": self.makespan_s,
            "utilisation": self.cpu_s / (self.makespan_s * self.cores),
        }


def make_plans(jobs: Sequence[TraceJob], max_steps: int) -> tuple[list[JobPlan], list[households.Household]]:
    plans, homes = [], []
    for j in jobs:
        c = job_class(j)
        home = households.household(c.household, c.seed)
        examples = tuple(households.corpus(home, "train", c.n_examples))
        steps = min(max_steps, steps_for_epochs(len(examples), c.batch_size, 1.0))
        lora = LoraConfig(rank=c.rank, alpha=2.0 * c.rank)
        bound = c.slowdown_bound
        plans.append(JobPlan(c.household, BASE, lora, c.batch_size, LEARNING_RATE, steps, 1, c.seed, examples, bound))
        homes.append(home)
    return plans, homes


def _cpu_s(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def run_runtime(
    name: str, scheduler: Book, plans: Sequence[JobPlan], arrive_s: Sequence[float], workdir: Path,
    nano_batches: int | None, cores: int, tick: Callable[[], None] = lambda: None,
) -> RunResult:  # fmt: skip
    """Jobs submitted to a TloraRuntime at their arrival times; trained in this process."""
    out = RunResult(name, cores=cores)
    rt = TloraRuntime(TloraOptions(workdir=workdir), BASE, scheduler, nano_batches=nano_batches)
    cpu0 = _cpu_s([os.getpid()])
    rt.start()
    try:
        t0 = time.time()
        for plan, at in zip(plans, arrive_s, strict=True):
            _sleep_until(t0 + at)
            out.submitted[plan.job_id] = time.time()
            rt.submit(plan)
        seen: set[str] = set()
        while not rt.wait(timeout=0.2):
            for p in rt.all_progress():
                if p.finished_at is not None and p.job_id not in seen:
                    seen.add(p.job_id)
                    tick()
    finally:
        rt.close()
    out.cpu_s = _cpu_s([os.getpid()]) - cpu0
    for p in rt.all_progress():
        if p.status != "succeeded":
            raise RuntimeError(f"{name}: job {p.job_id} ended {p.status} ({p.error})")
        if p.job_id not in seen:
            tick()
        out.finished[p.job_id] = p.finished_at  # type: ignore[assignment]
        out.samples += p.samples
        by_step = {e.step: e.loss for e in rt.events(p.job_id) if e.loss is not None}  # a resumed step: its last
        out.losses[p.job_id] = [by_step[s] for s in sorted(by_step)]  # type: ignore[misc]
    return out


def run_runtime_apart(
    name: str, scheduler: Book, plans: Sequence[JobPlan], arrive_s: Sequence[float], workdir: Path,
    nano_batches: int | None, cores: int, tick: Callable[[], None],
) -> RunResult:  # fmt: skip
    """:func:`run_runtime` in a fresh process whose main thread runs no torch work.

    The runtime trains on its worker threads.  Once a process's main thread has run torch's
    OpenMP work (this driver's calibration, the PEFT run), a second thread's OpenMP team trains
    ~1.7x slower on these 2 cores (measured: 12 steps 0.95 s on the main thread, 1.63 s on a
    second thread after it, 0.95 s on a thread of a process whose main thread ran none); the
    runtime's own processes (a cloud service, a Ray actor) do not start that way, so neither does
    the run measured here."""
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        pool.submit(torch.get_num_threads).result()  # started and imported before the clock
        out = pool.submit(run_runtime, name, scheduler, plans, arrive_s, workdir, nano_batches, cores).result()
    for _ in plans:
        tick()
    return out


def run_peft_fifo(
    plans: Sequence[JobPlan], arrive_s: Sequence[float], cores: int, tick: Callable[[], None]
) -> RunResult:
    """Each job alone with PEFT, one after another in arrival order (a job waits for the one before)."""
    import peft  # noqa: F401 (imported before the clock starts, as the split baseline's warm processes have it)

    out = RunResult("peft_fifo", cores=cores)
    cpu0 = _cpu_s([os.getpid()])
    t0 = time.time()
    for plan, at in zip(plans, arrive_s, strict=True):
        out.submitted[plan.job_id] = t0 + at
        _sleep_until(t0 + at)
        run = train_alone_peft(BASE, plan, threads=cores)
        out.finished[plan.job_id] = time.time()
        out.losses[plan.job_id] = list(run.losses)
        out.samples += plan.total_steps * plan.batch_size
        tick()
    out.cpu_s = _cpu_s([os.getpid()]) - cpu0
    return out


def _solo_process(conn: Connection) -> None:
    """A warm worker process (torch and PEFT imported): says so, receives (plan, threads),
    trains it alone with PEFT, answers."""
    import peft  # noqa: F401 (imported before the clock starts, as a warm pool would have it)

    conn.send("ready")
    plan, threads = conn.recv()
    run = train_alone_peft(BASE, plan, threads=threads)
    conn.send((list(run.losses), time.time()))
    conn.recv()  # stay alive until the driver has read this process's CPU time


def run_peft_split(
    plans: Sequence[JobPlan], arrive_s: Sequence[float], cores: int, tick: Callable[[], None]
) -> RunResult:
    """Each job alone with PEFT in its own (pre-started) process from its arrival, with the cores
    split among the jobs running then (torch threads = cores // running, at least 1)."""
    out = RunResult("peft_split", cores=cores)
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for _ in plans:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_solo_process, args=(child,), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    for pipe in pipes:
        pipe.recv()
    cpu0 = _cpu_s([p.pid for p in procs])  # type: ignore[misc]
    running: set[int] = set()
    t0 = time.time()
    pending = list(range(len(plans)))

    def collect(block: float) -> None:
        for i in list(running):
            if pipes[i].poll(block if len(running) == 1 else 0.0):
                losses, done = pipes[i].recv()
                out.finished[plans[i].job_id], out.losses[plans[i].job_id] = done, losses
                running.discard(i)
                tick()

    while pending or running:
        if pending and time.time() >= t0 + arrive_s[pending[0]]:
            i = pending.pop(0)
            running.add(i)
            out.submitted[plans[i].job_id] = t0 + arrive_s[i]
            pipes[i].send((plans[i], max(1, cores // len(running))))
        collect(0.05)
        time.sleep(0.02)
    out.cpu_s = _cpu_s([p.pid for p in procs]) - cpu0  # type: ignore[misc]
    for pipe, proc in zip(pipes, procs, strict=True):
        pipe.send(None)
        proc.join(timeout=30)
    out.samples = sum(p.total_steps * p.batch_size for p in plans)
    return out


def max_loss_rel_diff(ours: RunResult, solo: RunResult) -> float:
    worst = 0.0
    for job, want in solo.losses.items():
        got = ours.losses[job]
        if len(got) != len(want):
            raise RuntimeError(f"{job}: {len(got)} losses in {ours.name}, {len(want)} alone")
        worst = max(worst, *(abs(a - b) / abs(b) for a, b in zip(got, want, strict=True)))
    return worst


def household_accuracy(
    plans: Sequence[JobPlan], homes: Sequence[households.Household], workdir: Path, n: int
) -> list[dict]:
    """Base vs adapted exact match on each household's held-out commands (greedy)."""
    from edgeweave.generation.backends import load_backend
    from edgeweave.generation.chat import reply_text
    from edgeweave.generation.evaluate import household_exact_match

    base = load_backend("torch", BASE)
    rows = []
    for plan, home in zip(plans, homes, strict=True):
        adapted = load_backend("torch", BASE, adapter=workdir / plan.job_id / "adapter")
        before = household_exact_match(lambda t: reply_text(base, t), home, n).exact_match
        after = household_exact_match(lambda t: reply_text(adapted, t), home, n).exact_match  # noqa: B023
        rows.append(
            {
                "household": home.name,
                "rank": plan.lora.rank,
                "steps": plan.total_steps,
                "base": before,
                "adapted": after,
            }
        )
    return rows


def plot(runs: Sequence[RunResult], sim: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    names = [r.name for r in runs]
    rows = [r.row() for r in runs]
    axes[0].bar(names, [x["throughput_samples_s"] for x in rows], color="tab:green")
    axes[0].set_ylabel("training throughput, samples/s")
    x = np.arange(len(names))
    axes[1].bar(x - 0.2, [r["jct_mean_s"] for r in rows], 0.4, label="mean")
    axes[1].bar(x + 0.2, [r["jct_p95_s"] for r in rows], 0.4, label="p95")
    axes[1].set_xticks(x, names)
    axes[1].set_ylabel("job completion time, s")
    axes[1].legend()
    for r in runs:
        axes[2].plot(sorted(r.jct_s), np.linspace(0, 1, len(r.jct_s)), marker=".", label=r.name)
    axes[2].set_xlabel("JCT, s")
    axes[2].set_ylabel("fraction of jobs")
    axes[2].legend(fontsize=8)
    for ax in axes[:2]:
        ax.tick_params(axis="x", labelsize=8, rotation=15)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__ or "", "5 jobs of at most 8 steps, 3 households evaluated")
    ap.add_argument("--trace", default=str(POLLUX), help="CSV with name,time,application,num_replicas,batch_size")
    ap.add_argument(
        "--accuracy-steps", type=int, default=ACCURACY_STEPS,
        help="steps each evaluated household is trained alone before its exact match (0: the run's own adapters)",
    )  # fmt: skip
    ap.add_argument("--nano-batches", type=int, default=1, help="nano-batches per tLoRA step (0: AIMD on their count)")
    args = ap.parse_args(argv)
    from rich.console import Console
    from rich.progress import Progress

    console = Console()
    say = console.print
    n_jobs, max_steps, n_eval = (5, 8, 3) if args.quick else (16, 48, 16)
    try:
        jobs = load_jobs(args.trace)[:n_jobs]
        if len(jobs) < 2:
            raise UsageError(args.trace, f"{len(jobs)} job; need at least 2")
        if args.accuracy_steps < 0:
            raise UsageError("--accuracy-steps", f"must be 0 or positive (got {args.accuracy_steps})")
        if args.nano_batches < 0:
            raise UsageError("--nano-batches", f"must be 0 (AIMD) or positive (got {args.nano_batches})")
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    load_at_start = os.getloadavg()[0]
    started = time.time()
    say(f"trace: {CREDIT}; {len(jobs)} jobs; {cores} cores; load average {load_at_start:.2f} at start")
    plans, homes = make_plans(jobs, max_steps)
    cfg = ModelConfig.from_hf_dir(resolve_checkpoint(BASE))
    shapes = [shape_of(p, cfg) for p in plans]

    with console.status("1. measuring GroupTrainer steps on this machine to fit the step-time model"):
        calib = plans[:4]
        cost, r2 = fit(measure(BASE, calib, profile_groups(len(calib), len(calib)), steps=3))
    say(f"  ({time.time() - started:.0f} s so far)")
    say(f"step-time model (fitted on this machine's measured steps, R^2 {r2:.3f}): {cost.describe()}")

    one_by_one = sum(s.total_steps * cost.alone_s(s) for s in shapes)
    span = jobs[-1].time_s
    compression = span / (LOAD_FRACTION * one_by_one) if span > 0 else 1.0
    arrive_s = [j.time_s / compression for j in jobs]
    say(f"time compression {compression:.0f}x: {len(jobs)} arrivals over {arrive_s[-1]:.1f} s "
        f"(predicted {one_by_one:.1f} s one after another)")  # fmt: skip
    for p, s, a in zip(plans, shapes, arrive_s, strict=True):
        say(f"  {p.job_id}: rank {p.lora.rank}, batch {p.batch_size}, {p.total_steps} steps, width {s.width}, "
            f"bound {p.slowdown_bound}, arrives {a:.1f} s")  # fmt: skip

    capacity = CAPACITY_SAMPLES * cfg.max_seq_len
    nano = args.nano_batches or None
    work = Path(tempfile.mkdtemp(prefix="tlora-bench-"))
    runs: list[RunResult] = []
    with Progress(console=console, transient=False) as bar:
        task = bar.add_task("2. real training: tlora", total=5 * len(plans))
        tick = lambda: bar.advance(task)  # noqa: E731
        ours = TloraScheduler(cost, workers_of(1, capacity))
        runs.append(run_runtime_apart("tlora", ours, plans, arrive_s, work / "tlora", nano, cores, tick))
        bar.update(task, description="2. real training: fifo_colocate")
        mlora = FifoColocate(cost, workers_of(1, capacity))
        runs.append(run_runtime_apart("fifo_colocate", mlora, plans, arrive_s, work / "fifo", nano, cores, tick))
        bar.update(task, description="2. real training: tlora_solo_fifo")
        solo_ours = SoloFifo(cost, workers_of(1, capacity))
        runs.append(run_runtime_apart("tlora_solo_fifo", solo_ours, plans, arrive_s, work / "solo", nano, cores, tick))
        bar.update(task, description="2. real training: peft_fifo")
        runs.append(run_peft_fifo(plans, arrive_s, cores, tick))
        bar.update(task, description="2. real training: peft_split")
        runs.append(run_peft_split(plans, arrive_s, cores, tick))
    by = {r.name: r for r in runs}
    table = {r.name: r.row() for r in runs}
    say(f"  ({time.time() - started:.0f} s so far)")
    for name, row in table.items():
        say(f"  {name:>14}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))

    arrivals = [Arrival(a, s) for a, s in zip(arrive_s, shapes, strict=True)]
    sim = {
        "tlora": simulate(arrivals, TloraScheduler(cost, workers_of(1, capacity)), cost),
        "fifo_colocate": simulate(arrivals, FifoColocate(cost, workers_of(1, capacity)), cost),
        # the model was fitted on our path: its solo runs predict tlora_solo_fifo, not PEFT's
        "tlora_solo_fifo": simulate(arrivals, SoloFifo(cost, workers_of(1, capacity)), cost),
        "solo_split": simulate(arrivals, SoloSplit(cost, workers_of(1, capacity)), cost),
    }
    sim_rows = {k: {"throughput_samples_s": v.throughput, "jct_mean_s": v.jct_mean_s, "jct_p95_s": v.jct_p95_s,
                    "max_slowdown": v.max_slowdown} for k, v in sim.items()}  # fmt: skip
    say("3. simulator on the fitted model: " + ", ".join(f"{k} {v['throughput_samples_s']:.1f} samples/s, "
        f"JCT {v['jct_mean_s']:.1f} s" for k, v in sim_rows.items()))  # fmt: skip

    with console.status("4. households' exact match, base vs adapted"):
        evaluated, adapters = plans[:n_eval], work / "tlora"
        if args.accuracy_steps > 0:
            evaluated, adapters = [replace(p, total_steps=args.accuracy_steps) for p in evaluated], work / "accuracy"
            for p in evaluated:
                train_alone(BASE, p).adapter.save(adapters / p.job_id / "adapter")
        accuracy = household_accuracy(evaluated, homes[:n_eval], adapters, EVAL_PROMPTS)
    say(f"  ({time.time() - started:.0f} s so far)")
    gain = statistics.mean(r["adapted"] - r["base"] for r in accuracy)
    for r in accuracy:
        say(
            f"  {r['household']}: base {r['base']:.3f} -> adapted {r['adapted']:.3f}"
            f" (rank {r['rank']}, {r['steps']} steps)"
        )

    serving_ratio: float | None = None
    with console.status("5. multi-LoRA serving (benchmarks.lora_serving)"):
        from benchmarks.lora_serving import measure_multi_lora_serving

        serving = measure_multi_lora_serving(quick=True)
        serving_ratio = serving.multi_lora_serving_ratio

    ours, solo = table["tlora"], table["peft_fifo"]
    summary = {
        "throughput_ratio_vs_per_job": ours["throughput_samples_s"] / solo["throughput_samples_s"],
        "jct_ratio_vs_per_job": solo["jct_mean_s"] / ours["jct_mean_s"],
        "jct_p95_ratio_vs_per_job": solo["jct_p95_s"] / ours["jct_p95_s"],
        "throughput_ratio_vs_fifo": ours["throughput_samples_s"] / table["fifo_colocate"]["throughput_samples_s"],
        "jct_ratio_vs_fifo": table["fifo_colocate"]["jct_mean_s"] / ours["jct_mean_s"],
        # the same execution path one job at a time: what grouping alone gains, PEFT's own speed aside
        "throughput_ratio_vs_our_solo": ours["throughput_samples_s"] / table["tlora_solo_fifo"]["throughput_samples_s"],
        "jct_ratio_vs_our_solo": table["tlora_solo_fifo"]["jct_mean_s"] / ours["jct_mean_s"],
        "throughput_ratio_vs_split": ours["throughput_samples_s"] / table["peft_split"]["throughput_samples_s"],
        "jct_ratio_vs_split": table["peft_split"]["jct_mean_s"] / ours["jct_mean_s"],
        "max_loss_rel_diff_vs_solo": max_loss_rel_diff(by["tlora"], by["peft_fifo"]),
        "household_accuracy_gain": gain,
        "multi_lora_serving_ratio": serving_ratio,
        "utilisation_tlora": ours["utilisation"],
        "utilisation_per_job": solo["utilisation"],
        "sim_throughput_ratio_vs_our_solo": sim["tlora"].throughput / sim["tlora_solo_fifo"].throughput,
        "sim_jct_ratio_vs_our_solo": sim["tlora_solo_fifo"].jct_mean_s / sim["tlora"].jct_mean_s,
        "jobs": len(plans),
        "load_average_at_start": load_at_start,
    }
    for k, v in summary.items():
        say(f"{k} = {v:.3f}" if isinstance(v, float) else f"{k} = {v}")
    met = {k: summary[k] >= x for k, x in (("throughput_ratio_vs_per_job", 1.8), ("jct_ratio_vs_per_job", 5.0))}
    say(
        "targets (>= 1.8x throughput, >= 5x JCT vs per-job): "
        + ", ".join(f"{k} {'met' if v else 'not met'}" for k, v in met.items())
    )
    out = save_result(
        "tlora",
        args.quick,
        summary,
        trace={"path": str(args.trace), "credit": CREDIT, "compression": compression},
        cost_model=asdict(cost) | {"r2": r2},
        jobs=[{"job": p.job_id, "arrival_s": a, **asdict(s)} for p, s, a in zip(plans, shapes, arrive_s, strict=True)],
        real=table,
        simulated=sim_rows,
        households=accuracy,
    )
    plot(
        runs,
        sim_rows,
        RESULTS / "tlora.png",
        f"tLoRA vs per-job PEFT and FIFO co-location, real training, {len(plans)} jobs\n{CREDIT}",
    )
    say(f"wrote {out} and {RESULTS / 'tlora.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
