"""Agents on the smart home: SAS, MAS, routing, the cascade, the cascade with the upgrade, and MAS all-cloud.

The demo cluster as real processes: a torch device daemon serving weave-agent-device, a cloud service
serving the same model (where a moved loop continues) and one serving weave-agent-cloud (the stronger
model an upgraded agent calls), behind a coordinator; every agent calls the coordinator through the
official ``openai`` client.  The same household tasks (the suite's test split by default, or
``--split hidden``; levels 1..8 tool calls) go to every system in one run; the checker scores each.

Reported per system: accuracy (overall and per level), prefill and decode tokens, cost (the
coordinator's DiSCo cost of each answer: cloud price per token, device energy at its measured power),
and latency (a task's model time, median).  Tracing: on every task MAS fails, MAS runs again with each
of its agents upgraded in turn; the hit rate is how often the traced agent is one whose upgrade fixes
the task, over the tasks some single upgrade fixes.  The router trains on the SAS outcomes of
train-split tasks run first (the test tasks never feed it).

Headline keys: ``cascade_accuracy_gain_vs_mas`` (points), ``cascade_cost_reduction_vs_mas`` (1 -
cost ratio), ``sas_accuracy``, ``mas_accuracy``, ``tracing_hit_rate``, ``upgrade_accuracy_gain``
(cascade+upgrade minus cascade, points).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import openai
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from benchmarks.results_io import RESULTS, parser, save_result
from cloud.agents.chat import OpenAIChatModel, TurnCache
from cloud.agents.policy import DifficultyRouter, trace, wrong_devices
from cloud.agents.record import RunRecord
from cloud.agents.runtime import Setup, SystemRun, run_cascade, run_mas, run_routed, run_sas
from coordinator.agents.cascade import CascadeGate
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.home.checker import check
from edgeweave.home.tasks import MAX_LEVEL, Task, suite

DEVICE_MODEL, CLOUD_MODEL = "weave-agent-device", "weave-agent-cloud"
SYSTEMS = ("sas", "mas", "routing", "cascade", "cascade+upgrade", "mas-cloud")
DEVICE = LocalDevice("jetson-1", "jetson", "torch", threads=1, max_queue=4, model=DEVICE_MODEL)


@dataclass
class Outcome:
    task: Task
    run: SystemRun
    passed: bool

    @property
    def prefill(self) -> int:
        return sum(r.prefill_tokens for r in self.run.runs)

    @property
    def decode(self) -> int:
        return sum(r.decode_tokens for r in self.run.runs)

    @property
    def cost_usd(self) -> float:
        return self.run.cost_usd

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.run.runs)


@dataclass
class Results:
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    traced: list[tuple[str, set[str]]] = field(default_factory=list)  # (traced agent, agents whose upgrade fixes)

    def accuracy(self, system: str, level: int | None = None) -> float:
        rows = [o for o in self.outcomes[system] if level is None or o.task.level == level]
        return sum(o.passed for o in rows) / len(rows) if rows else float("nan")

    def cost(self, system: str) -> float:
        return statistics.fmean(o.cost_usd for o in self.outcomes[system])


def passed(task: Task, record: RunRecord) -> bool:
    return check(task.initial, record.final, task.goal).passed


async def one(system: str, task: Task, setup: Setup, router: DifficultyRouter, gate: CascadeGate) -> SystemRun:
    if system == "sas":
        return SystemRun("sas", [await run_sas(task.request, task.initial, setup)])
    if system == "mas":
        return SystemRun("mas", [await run_mas(task.request, task.initial, setup)])
    if system == "mas-cloud":
        return SystemRun("mas-cloud", [await run_mas(task.request, task.initial, setup, all_cloud=True)])
    if system == "routing":
        return await run_routed(task.request, task.initial, setup, router)
    return await run_cascade(task.request, task.initial, setup, gate, upgrade=system == "cascade+upgrade")


async def oracle(task: Task, failed: RunRecord, setup: Setup) -> tuple[str, set[str]]:
    """The traced agent of a failed MAS run, and every agent whose upgrade alone fixes the task."""
    wrong = wrong_devices(check(task.initial, failed.final, task.goal).wrong)
    traced = trace(failed, wrong)
    fixes = set()
    for agent in [a.name for a in failed.agents if a.role != "verifier"]:
        again = await run_mas(task.request, task.initial, setup, upgrades=frozenset({agent}))
        if passed(task, again):
            fixes.add(agent)
    return traced, fixes


async def run_all(
    api: openai.AsyncOpenAI, tasks: Sequence[Task], train: Sequence[Task], max_oracle: int, progress: Progress
) -> Results:
    chat = OpenAIChatModel(api)
    gate = CascadeGate()

    def setup() -> Setup:  # each system's run of a task has its own turn cache (nothing is shared across systems)
        return Setup(chat=chat.with_cache(TurnCache()))

    job = progress.add_task("router: SAS on train tasks", total=len(train))
    labels = []
    for t in train:
        labels.append(not passed(t, await run_sas(t.request, t.initial, setup())))
        progress.advance(job)
    router = DifficultyRouter().fit([t.request for t in train], labels)
    res = Results()
    for system in SYSTEMS:
        job = progress.add_task(system, total=len(tasks))
        res.outcomes[system] = []
        for t in tasks:
            run = await one(system, t, setup(), router, gate)
            res.outcomes[system].append(Outcome(t, run, passed(t, run.runs[-1])))
            progress.advance(job)
    failed = [o for o in res.outcomes["mas"] if not o.passed][:max_oracle]
    job = progress.add_task("tracing oracle (MAS failures)", total=len(failed))
    for o in failed:
        res.traced.append(await oracle(o.task, o.run.runs[-1], setup()))
        progress.advance(job)
    return res


def with_cluster(work: Callable[[openai.AsyncOpenAI], Awaitable[Results]], console: Console) -> Results:
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp)) as cluster:
        with console.status("starting the cluster: coordinator, a torch device, two cloud services"):
            cluster.start_clouds({"cloud-small": DEVICE_MODEL, "cloud": CLOUD_MODEL})
            (device,) = cluster.start_devices((DEVICE,))
            cluster.start_coordinator(mdns=False, static=(device.url,))
            cluster.wait_until(lambda up: up == {DEVICE.id}, timeout_s=60)
        api = openai.AsyncOpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0, timeout=120)
        return asyncio.run(work(api))


def summarize(res: Results) -> dict[str, float]:
    hits = [traced in fixes for traced, fixes in res.traced if fixes]
    out: dict[str, float] = {
        "cascade_accuracy_gain_vs_mas": 100 * (res.accuracy("cascade") - res.accuracy("mas")),
        "cascade_cost_reduction_vs_mas": 1 - res.cost("cascade") / res.cost("mas") if res.cost("mas") else float("nan"),
        "sas_accuracy": res.accuracy("sas"),
        "mas_accuracy": res.accuracy("mas"),
        "tracing_hit_rate": sum(hits) / len(hits) if hits else float("nan"),
        "upgrade_accuracy_gain": 100 * (res.accuracy("cascade+upgrade") - res.accuracy("cascade")),
        "tracing_cases": float(len(hits)),
        "tasks": float(len(res.outcomes["sas"])),
    }
    for s in SYSTEMS:
        key = s.replace("+", "_plus_").replace("-", "_")
        out[f"{key}_accuracy"] = res.accuracy(s)
        out[f"{key}_cost_usd"] = res.cost(s)
        out[f"{key}_prefill_tokens"] = statistics.fmean(o.prefill for o in res.outcomes[s])
        out[f"{key}_decode_tokens"] = statistics.fmean(o.decode for o in res.outcomes[s])
        out[f"{key}_latency_s"] = statistics.median(o.seconds for o in res.outcomes[s])
    out["cascade_escalation_rate"] = statistics.fmean(o.run.escalated for o in res.outcomes["cascade"])
    return out


def plot(res: Results, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    levels = list(range(1, MAX_LEVEL + 1))
    for s in SYSTEMS:
        ax1.plot(levels, [res.accuracy(s, lv) for lv in levels], marker="o", label=s)
        ax2.scatter([res.cost(s) * 1e6], [res.accuracy(s)], s=60, label=s)
        ax2.annotate(s, (res.cost(s) * 1e6, res.accuracy(s)), fontsize=7)
    ax1.set_xlabel("difficulty level (tool calls)")
    ax1.set_ylabel("accuracy (exact checker)")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("cost per task, micro-USD (DiSCo: cloud price + device energy)")
    ax2.set_ylabel("accuracy")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(res: Results, summary: dict[str, float], console: Console) -> None:
    table = Table(title="agents on the smart home (one run, same tasks)")
    for col in ("system", "accuracy", *(f"L{lv}" for lv in range(1, MAX_LEVEL + 1)), "prefill", "decode", "µUSD", "s"):
        table.add_column(col)
    for s in SYSTEMS:
        key = s.replace("+", "_plus_").replace("-", "_")
        table.add_row(
            s,
            f"{res.accuracy(s):.2f}",
            *(f"{res.accuracy(s, lv):.2f}" for lv in range(1, MAX_LEVEL + 1)),
            f"{summary[f'{key}_prefill_tokens']:.0f}",
            f"{summary[f'{key}_decode_tokens']:.0f}",
            f"{res.cost(s) * 1e6:.1f}",
            f"{summary[f'{key}_latency_s']:.2f}",
        )
    console.print(table)
    for k in ("cascade_accuracy_gain_vs_mas", "cascade_cost_reduction_vs_mas", "sas_accuracy", "mas_accuracy",
              "tracing_hit_rate", "upgrade_accuracy_gain"):  # fmt: skip
        console.print(f"{k}: {summary[k]:.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__ or "", "one task at each odd level, fewer router and tracing runs")
    ap.add_argument("--split", choices=("test", "hidden"), default="test", help="which held-out tasks")
    ap.add_argument("--per-level", type=int, default=None, help="tasks per difficulty level (default 4; quick 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    per_level = args.per_level or (1 if args.quick else 4)
    tasks = suite(args.split, per_level, seed=args.seed)[:: 2 if args.quick else 1]  # quick: levels 1, 3, 5, 7
    train = suite("train", 1 if args.quick else 2, seed=args.seed)[:: 2 if args.quick else 1]
    console = Console()
    start = time.perf_counter()
    with Progress(console=console) as progress:
        res = with_cluster(lambda api: run_all(api, tasks, train, 2 if args.quick else 12, progress), console)
    summary = summarize(res)
    report(res, summary, console)
    per_level_acc = {s: {lv: res.accuracy(s, lv) for lv in range(1, MAX_LEVEL + 1)} for s in SYSTEMS}
    path = save_result(
        "agents", args.quick, summary, split=args.split, per_level=per_level, seconds=time.perf_counter() - start,
        accuracy_per_level=per_level_acc, traced=[[t, sorted(f)] for t, f in res.traced],
    )  # fmt: skip
    plot(res, RESULTS / "agents.png", f"agents, {len(tasks)} {args.split} tasks, {per_level}/level")
    console.print(f"wrote {path} and {RESULTS / 'agents.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
