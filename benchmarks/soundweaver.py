"""SoundWeaver against its baselines on one sound-request trace: latency, quality, hit rate, steps.

``python -m benchmarks.soundweaver [--quick] [--trace PATH] [--steps N --solver ddim|dpm]``.  Every
method serves the same trace with the same model (the committed ``weave-sound``) through
:class:`cloud.soundweaver.runtime.SoundRuntime`, the code the cloud's ``/v1/audio/generations`` runs:

- ``full``: every request from noise at the full schedule (``--steps`` of ``--solver``: 50 DDIM
  steps unless told otherwise; every method's requests ask for this schedule, so with
  ``--solver dpm`` SoundWeaver's warm starts skip part of a DPM-Solver++ schedule);
- ``soundweaver``: the paper's selector, contextual-bandit gater and importance/quality cache, with
  refinement when the server is idle;
- ``soundweaver-lru``: the same with an LRU cache (no quality-aware eviction, no refinement);
- ``nirvana``: NIRVANA-style noised intermediate latents, skip depth by similarity, LCBFU eviction;
- ``fewer-steps``: every request from noise with DPM-Solver++ at the number of steps that makes its
  mean service time match SoundWeaver's (measured in this run, so it runs last).

The four cached/full methods are interleaved request by request, so the shared machine's drift
hits them alike.  Each request's service time is measured; the queue is replayed on a virtual
clock from the trace's Poisson arrivals (a request starts when it has arrived and the one worker
is free; an idle worker runs SoundWeaver's refinement, whose time delays what comes next).
Latency is reported both as service time (headline: the speed of generation itself) and with
queueing.  Quality: :mod:`edgeweave.audio.quality` (CLAP score, classifier accuracy, Frechet
distance, spectral distance to the full-step output of the same prompt and seed), with bootstrap
95% intervals.  Writes ``benchmarks/results/soundweaver.json``, a PNG and a few example WAVs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks.results_io import RESULTS, parser, save_result
from cloud.soundweaver.baselines import NoCache
from cloud.soundweaver.policy import CachePolicy, SoundJob
from cloud.soundweaver.runtime import GeneratedSound, SoundRuntime
from cloud.soundweaver.service import QUEUE_FOR_FULL_LOAD, encode, make_policy
from edgeweave.audio import traces
from edgeweave.audio.corpus import CONCEPTS, render
from edgeweave.audio.judges import Judges
from edgeweave.audio.mel import GriffinLim, frames_for, to_mel
from edgeweave.audio.quality import frechet, frechet_interval, interval, paired_interval, spectral_distance_db
from edgeweave.audio.solvers import Solver
from edgeweave.config import SoundOptions
from edgeweave.models.registry import checkpoint_dir
from edgeweave.models.sound import LatentSoundModel, load_sound_model
from edgeweave.wire.audio import MAX_STEPS

TEST_TRACE = Path(__file__).parent / "traces" / "sound_requests_test.csv"
FULL_STEPS = 50


@dataclass
class Served:
    sound: GeneratedSound
    wait_s: float  # queueing on the virtual clock


@dataclass
class Method:
    name: str
    policy: CachePolicy
    runtime: SoundRuntime
    served: list[Served] = field(default_factory=list)
    free_at: float = 0.0
    refine_s: float = 0.0
    refinements: int = 0

    def serve(self, job: SoundJob, arrival: float, later: np.ndarray) -> None:
        """``later``: the arrival times of the requests after this one (those already in have queued)."""
        start = max(arrival, self.free_at)
        self.runtime.clock = lambda: start
        waiting = int(np.searchsorted(later, start, side="right"))
        sound = self.runtime.serve(job, min(waiting / QUEUE_FOR_FULL_LOAD, 1.0))
        self.served.append(Served(sound, start - arrival))
        self.free_at = start + sound.latency_s

    def idle_until(self, next_arrival: float) -> None:
        """Refinement while the worker would be idle before ``next_arrival`` (one job at most)."""
        if next_arrival <= self.free_at:
            return
        at = self.free_at
        self.runtime.clock = lambda: at
        t = time.perf_counter()
        if self.runtime.refine():
            took = time.perf_counter() - t
            self.refine_s += took
            self.refinements += 1
            self.free_at = at + took


def _method(name: str, policy: CachePolicy, model: LatentSoundModel, judges: Judges) -> Method:
    return Method(name, policy, SoundRuntime(model, judges, policy))


def _policies(capacity: int, model: LatentSoundModel) -> dict[str, CachePolicy]:
    """The served policies, built as the cloud service builds them (:func:`cloud.soundweaver.service.make_policy`)."""
    return {
        name: make_policy(SoundOptions(policy=kind, cache_entries=capacity), model)
        for name, kind in (
            ("full", "none"),
            ("soundweaver", "soundweaver"),
            ("soundweaver-lru", "soundweaver-lru"),
            ("nirvana", "nirvana"),
        )
    }


def _judged(m: Method, rows: list[traces.SoundRequestRow], embeddings: np.ndarray, judges: Judges):  # type: ignore[no-untyped-def]
    preds, embs, claps = [], [], []
    for s, e in zip(m.served, embeddings, strict=True):
        p, emb, clap = judges.judge(s.sound.audio, e)
        preds.append(p)
        embs.append(emb)
        claps.append(clap)
    correct = [float(CONCEPTS[p] == r.spec.concept) for p, r in zip(preds, rows, strict=True)]
    return np.asarray(claps), np.asarray(correct), np.stack(embs)


def equal_latency_steps(methods: dict[str, Method], most: int) -> int:
    """The steps at which fewer-step sampling costs SoundWeaver's mean service time: service time fitted
    as a + b x steps run over the full-step and SoundWeaver requests of this run (least squares),
    per second of audio, then solved at SoundWeaver's mean."""
    served = [s for n in ("full", "soundweaver") for s in methods[n].served]
    x = np.array([[1.0, s.sound.seconds, s.sound.steps_run * s.sound.seconds] for s in served])
    y = np.array([s.sound.latency_s for s in served])
    (a, per_second, per_step_second), *_ = np.linalg.lstsq(x, y, rcond=None)
    sw = methods["soundweaver"].served
    seconds = float(np.mean([s.sound.seconds for s in sw]))
    target = float(np.mean([s.sound.latency_s for s in sw]))
    steps = (target - a - per_second * seconds) / max(per_step_second * seconds, 1e-9)
    return int(np.clip(round(steps), 1, most))


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__ or "", "18 requests of a 20-concept trace")
    ap.add_argument("--trace", type=Path, default=None, help=f"a trace CSV ({', '.join(traces.COLUMNS)})")
    ap.add_argument("--requests", type=int, default=None, help="replay only the first N requests")
    ap.add_argument("--cache-entries", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=FULL_STEPS, help="the full schedule's length")
    ap.add_argument("--solver", choices=get_args(Solver), default="ddim", help="the full schedule's sampler")
    ap.add_argument("--model", type=Path, default=checkpoint_dir("weave-sound"))
    ap.add_argument("--judges", type=Path, default=checkpoint_dir("weave-sound-judges"))
    a = ap.parse_args(argv)
    if not 2 <= a.steps <= MAX_STEPS:
        ap.error(f"--steps must be 2-{MAX_STEPS}")
    if a.requests is not None and a.requests < 2:
        ap.error("--requests must be at least 2")
    if a.trace is not None and not a.trace.is_file():
        ap.error(f"--trace {a.trace}: no such file")
    console = Console()
    if a.trace is not None:
        rows = traces.read(a.trace)
    elif a.quick:
        rows = traces.generate(18, seed=2, concepts=20, paraphrase=1)
    else:
        rows = traces.read(TEST_TRACE)
    rows = rows[: a.requests] if a.requests else rows
    if len(rows) < 2:
        ap.error("the trace needs at least 2 requests")
    model = load_sound_model(a.model)
    judges = Judges.load(a.judges)
    embeddings = model.embed([r.prompt for r in rows])
    jobs = [SoundJob(r.prompt, e, r.duration, a.steps, r.seed, a.solver) for r, e in zip(rows, embeddings, strict=True)]
    methods = {n: _method(n, p, model, judges) for n, p in _policies(a.cache_entries, model).items()}
    with Progress(console=console) as bar:
        task = bar.add_task("serving the trace (full, soundweaver, lru, nirvana)", total=len(jobs))
        # one throwaway generation first: librosa's compiled kernels and torch's first-call setup are paid here
        SoundRuntime(model, judges, NoCache("warm-up")).serve(jobs[0])
        arrivals = np.array([r.arrival_s for r in rows])
        order = list(methods.values())
        for i, (job, row) in enumerate(zip(jobs, rows, strict=True)):
            nxt = rows[i + 1].arrival_s if i + 1 < len(rows) else float("inf")
            for m in order[i % len(order) :] + order[: i % len(order)]:  # rotated: no method always goes first
                m.serve(job, row.arrival_s, arrivals[i + 1 :])
                m.idle_until(nxt)
            bar.advance(task)
        fewer = equal_latency_steps(methods, a.steps)
        m = _method("fewer-steps", NoCache("fewer-steps", fewer, "dpm"), model, judges)
        methods["fewer-steps"] = m
        task = bar.add_task(f"serving the trace (fewer-steps: {fewer} DPM-Solver++ steps)", total=len(jobs))
        for i, (job, row) in enumerate(zip(jobs, rows, strict=True)):
            m.serve(job, row.arrival_s, arrivals[i + 1 :])
            bar.advance(task)
        task = bar.add_task("judging", total=len(methods) + 1)
        gl = GriffinLim()
        truth = [to_mel(render(r.spec, r.seed), frames_for(r.duration)) for r in rows]
        truth_audio = [gl(t, r.duration, r.seed) for t, r in zip(truth, rows, strict=True)]
        truth_embs = np.stack([judges.judge(x, e)[1] for x, e in zip(truth_audio, embeddings, strict=True)])
        bar.advance(task)
        judged = {}
        for name, meth in methods.items():
            judged[name] = _judged(meth, rows, embeddings, judges)
            bar.advance(task)
    full_audio = [s.sound.audio for s in methods["full"].served]
    summary_rows = {}
    for name, meth in methods.items():
        service = np.array([s.sound.latency_s for s in meth.served])
        e2e = np.array([s.sound.latency_s + s.wait_s for s in meth.served])
        claps, correct, embs = judged[name]
        spectral = [spectral_distance_db(s.sound.audio, f) for s, f in zip(meth.served, full_audio, strict=True)]
        makespan = max(meth.free_at - rows[0].arrival_s, 1e-9)
        summary_rows[name] = {
            "service_p50_s": float(np.median(service)),
            "service_p95_s": float(np.percentile(service, 95)),
            "service_mean_s": float(service.mean()),
            "latency_p50_s": float(np.median(e2e)),
            "latency_p95_s": float(np.percentile(e2e, 95)),
            "capacity_rps": len(service) / float(service.sum() + meth.refine_s),
            "throughput_rps": len(service) / makespan,
            "steps_run_mean": float(np.mean([s.sound.steps_run for s in meth.served])),
            "hit_rate": float(np.mean([s.sound.hit for s in meth.served])),
            "cache_entries": meth.policy.cache_entries(),
            "refinements": meth.refinements,
            "clap": float(claps.mean()),
            "clap_ci": interval(claps),
            "accuracy": float(correct.mean()),
            "accuracy_ci": interval(correct),
            "frechet": frechet(embs, truth_embs),
            "frechet_ci": frechet_interval(embs, truth_embs),
            "spectral_db": float(np.mean(spectral)),
            "spectral_db_ci": interval(spectral),
        }
    s = summary_rows
    sw_clap, full_clap, few_clap = judged["soundweaver"][0], judged["full"][0], judged["fewer-steps"][0]
    d_full, d_full_ci = paired_interval(sw_clap, full_clap)
    d_few, d_few_ci = paired_interval(sw_clap, few_clap)
    acc_full, acc_full_ci = paired_interval(judged["soundweaver"][1], judged["full"][1])
    summary = {
        "requests": len(rows),
        "full_steps": a.steps,
        "full_solver": a.solver,
        "latency_ratio_vs_full": s["full"]["service_mean_s"] / s["soundweaver"]["service_mean_s"],
        "latency_p50_ratio_vs_full": s["full"]["service_p50_s"] / s["soundweaver"]["service_p50_s"],
        "quality_delta_vs_full": d_full,
        "quality_delta_vs_full_ci": d_full_ci,
        "accuracy_delta_vs_full": acc_full,
        "accuracy_delta_vs_full_ci": acc_full_ci,
        "latency_ratio_vs_nirvana": s["nirvana"]["service_mean_s"] / s["soundweaver"]["service_mean_s"],
        "latency_ratio_vs_lru": s["soundweaver-lru"]["service_mean_s"] / s["soundweaver"]["service_mean_s"],
        "quality_delta_vs_fewer_steps": d_few,
        "quality_delta_vs_fewer_steps_ci": d_few_ci,
        "fewer_steps": fewer,
        "latency_ratio_fewer_steps_vs_soundweaver": s["fewer-steps"]["service_mean_s"]
        / s["soundweaver"]["service_mean_s"],
        "hit_rate": s["soundweaver"]["hit_rate"],
        "cache_entries": s["soundweaver"]["cache_entries"],
    }
    table = Table(title=f"SoundWeaver on {len(rows)} requests (service times in s; +queue: with queueing)")
    cols = {
        "service_p50_s": "p50", "service_p95_s": "p95", "latency_p95_s": "p95+queue", "capacity_rps": "req/s",
        "steps_run_mean": "steps", "hit_rate": "hits", "clap": "CLAP", "accuracy": "acc", "frechet": "FD",
        "spectral_db": "spec dB",
    }  # fmt: skip
    table.add_column("method")
    for label in cols.values():
        table.add_column(label, justify="right")
    for name, r in s.items():
        table.add_row(name, *(f"{r[c]:.3g}" for c in cols))
    console.print(table)
    for k, v in summary.items():
        console.print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    path = save_result(
        "soundweaver", a.quick, summary, methods=s, trace=str(a.trace or ("generated" if a.quick else TEST_TRACE))
    )
    _examples(methods, rows)
    _plot(s, RESULTS / "soundweaver.png", f"SoundWeaver, {len(rows)} requests")
    console.print(f"wrote {path}")
    return 0


def _examples(methods: dict[str, Method], rows: list[traces.SoundRequestRow], count: int = 3) -> None:
    """A few requests served as warm starts, each as every method made it (WAV files)."""
    out = RESULTS / "soundweaver_examples"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # an earlier run's examples
        old.unlink()
    sw = methods["soundweaver"].served
    picks = [i for i, s in enumerate(sw) if s.sound.hit][:count] or list(range(min(count, len(rows))))
    for i in picks:
        for name, m in methods.items():
            (out / f"{i:03d}-{name}.wav").write_bytes(encode(m.served[i].sound.audio, "wav"))
        (out / f"{i:03d}-prompt.txt").write_text(f"{rows[i].prompt} ({rows[i].duration} s)\n")


def _plot(s: dict[str, dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(s)
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].bar(x - 0.2, [s[n]["service_p50_s"] for n in names], 0.4, label="p50")
    axes[0].bar(x + 0.2, [s[n]["service_p95_s"] for n in names], 0.4, label="p95")
    axes[0].set_ylabel("service latency, s")
    axes[0].legend()
    axes[1].bar(x, [s[n]["clap"] for n in names], yerr=[s[n]["clap_ci"] for n in names], color="tab:green")
    axes[1].set_ylabel("CLAP score (95% CI)")
    axes[2].bar(x, [s[n]["accuracy"] for n in names], yerr=[s[n]["accuracy_ci"] for n in names], color="tab:purple")
    axes[2].set_ylabel("classifier accuracy (95% CI)")
    for ax in axes:
        ax.set_xticks(x, names)
        ax.tick_params(axis="x", labelsize=8, rotation=15)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
