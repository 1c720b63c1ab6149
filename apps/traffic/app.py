"""The traffic-analytics app: several cameras' frame streams through detector -> classifier -> LLM
summary pipelines that Circinus plans across device, edge and cloud, run for real on a cluster, with
each camera's SLO attainment and cost printed live; then the same streams under per-query greedy
placement, for comparison.

Everything goes through a coordinator (:mod:`coordinator.circinus.cluster`):
the app lists its endpoints, gives each spec tier one (``device`` a Pi or a
phone, ``edge`` a Jetson, ``cloud`` the cloud service; ``--tier`` to
choose), profiles every operator on the tiers themselves (each profiling
step one run there, timed by the tier), plans, and streams.  With ``--url``
and ``--api-key`` it runs on a cluster already up, such as the demo cluster
(``edgeweave demo --serve``).  Without, it starts its own: the cloud
service, a Pi-class camera box and a Jetson-class edge box behind a
coordinator; as root the two boxes live in network namespaces behind an
emulated LAN (:mod:`edgeweave.emulation`) with CPU quotas matching the
spec's tier factors (a factor-4 tier gets a quarter of a core), and the
cloud answers after the spec's edge-cloud round trip; elsewhere they run on
loopback at this machine's speed, with a notice.

Each camera sends frames at its query's rate (synthetic road frames with
known labels) for ``seconds``; an invocation meets its SLO when it finishes
within ``latency_s``; accuracy is the classifier's answer against the
frame's label; cost is each operator's reported compute time at its tier's
price.  Under Circinus the run re-plans
(:class:`coordinator.circinus.replan.Replanner`) when a tier fails or a
camera's SLO attainment drops; ``--leave-after S`` stops the camera box's
daemon S seconds in to show it (the greedy run is then skipped).

    python -m apps.traffic [--spec apps/traffic/workload.yaml] [--seconds 15] [--leave-after S]
    python -m apps.traffic --url URL --api-key KEY [--tier edge=jetson-1]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from coordinator.circinus.baselines import greedy
from coordinator.circinus.cluster import Attached, add_arguments, attach, from_arguments
from coordinator.circinus.executor import Executor, Invocation, OperatorError
from coordinator.circinus.measure import from_infrastructure, measure
from coordinator.circinus.planner import Scored
from coordinator.circinus.profiles import Profiler
from coordinator.circinus.replan import Replanner
from coordinator.circinus.solve import solve
from coordinator.circinus.spec import Query, Workload, load
from coordinator.dora.emulation import Lan, unavailable
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.cluster.processes import ServiceProcess
from edgeweave.errors import UsageError
from edgeweave.models.vision import CLASSES, frames
from edgeweave.serving.emulated_link import LINK_ENV

SPEC = Path(__file__).parent / "workload.yaml"
BOXES = (("device", LocalDevice("pi-1", "pi", "llamacpp", threads=1)),
         ("edge", LocalDevice("jetson-1", "jetson", "llamacpp", threads=1)))  # fmt: skip


@dataclass
class Stats:
    sent: int = 0
    met: int = 0
    correct: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    latencies: list[float] = field(default_factory=list)


@dataclass
class Started:
    """The cluster the app started: the coordinator's view of it and the daemon behind each tier."""

    attached: Attached
    daemons: dict[str, ServiceProcess]
    notice: str = ""


@contextlib.contextmanager
def cluster_up(workload: Workload, tmp: Path) -> Iterator[Started]:
    """A coordinator in front of a Pi-class camera box and a Jetson-class edge box (on an emulated
    LAN with CPU quotas as root) and the cloud service."""
    assert workload.infrastructure is not None
    infra = workload.infrastructure
    cloud_rtt = next(link.rtt_ms for link in infra.links if set(link.between) == {"edge", "cloud"})
    reason = unavailable()
    # the daemons (and their namespaces) go before the coordinator and the cloud
    with LocalCluster(tmp) as cluster, contextlib.ExitStack() as stack:
        cluster.start_cloud(env={LINK_ENV: f"{cloud_rtt / 2},0"})
        daemons: dict[str, ServiceProcess] = {}
        lan = None
        if reason is None:
            mbit = next(link.mbit for link in infra.links if set(link.between) == {"device", "edge"})
            lan = stack.enter_context(Lan(ap_mbit=mbit, delay_ms=2.0))
        for tier, prof in BOXES:
            if lan is None:
                daemons[tier] = cluster.spawn_device(prof, advertise=False)
                continue
            host = lan.add(prof.id, link_mbit=2 * mbit, cpu_share=min(1.0, 1 / infra.tiers[tier].factor))
            daemons[tier] = lan.spawn_device(host, prof, cluster.secret, tmp)
            stack.callback(daemons[tier].stop)
        for svc in daemons.values():
            svc.wait_ready(300)
        cluster.start_coordinator(mdns=False, static=tuple(svc.url for svc in daemons.values()))
        cluster.wait_until(lambda up: {p.id for _, p in BOXES} <= up, 60)
        notice = "" if reason is None else f"no emulated LAN or CPU quotas ({reason}): tiers run at full speed"
        yield Started(attach(cluster.url, cluster.api_key, infra.tiers), daemons, notice)


@dataclass
class Run:
    """What the camera threads share: the plans in force (swapped on a re-plan) and what happened."""

    workload: Workload
    executor: Executor
    replanner: Replanner
    prices: dict[str, float]
    chosen: dict[str, Scored]
    stats: dict[str, Stats]
    events: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plan_for(self, query: str) -> Scored | None:
        with self.lock:
            return self.chosen.get(query)

    def report(self, q: Query, inv: Invocation | None, failed_tier: str | None) -> None:
        with self.lock:
            if failed_tier is not None:
                self.replanner.failed(failed_tier)  # type: ignore[arg-type]
            if inv is not None:
                plan = self.chosen.get(q.id)
                keys = {c.op: c.key for c in plan.plan.choices} if plan else {}
                times = {keys[op]: s for op, s in inv.compute_s.items() if op in keys}
                self.replanner.observe(q.id, inv.latency_s <= q.slo.latency_s, times)
            why = self.replanner.due(self.chosen)
            if why:
                try:
                    self.chosen = dict(self.replanner.replan().selection.chosen)
                except OperatorError as e:  # profiling found another tier gone: the next report plans again
                    if e.tier is not None:
                        self.replanner.failed(e.tier)  # type: ignore[arg-type]
                    self.events.append(f"re-planning stopped: {e}")
                    return
                self.events.append(f"re-planned: {why}; now serving {len(self.chosen)} cameras")


def _camera(run: Run, q: Query, seconds: float, seed: int) -> None:
    pipeline = run.workload.pipeline(q.pipeline)
    stats = run.stats[q.id]
    period = 1.0 / q.rate
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        x, y = frames(1, seed * 100_003 + i)
        plan = run.plan_for(q.id)
        stats.sent += 1
        if plan is None:
            stats.failed += 1  # not served under the plans in force
        else:
            try:
                inv = run.executor.invoke(plan.plan, pipeline, x)
            except OperatorError as e:
                stats.failed += 1
                run.report(q, None, e.tier)
            else:
                stats.latencies.append(inv.latency_s)
                stats.met += inv.latency_s <= q.slo.latency_s
                stats.correct += inv.outputs.get("classify") == CLASSES[int(y[0])]
                stats.cost_usd += sum(s * run.prices[inv.tiers[op]] for op, s in inv.compute_s.items())
                run.report(q, inv, None)
        i += 1
        time.sleep(max(0.0, start + i * period - time.perf_counter()))


def _table(title: str, workload: Workload, chosen: dict[str, Scored], stats: dict[str, Stats]) -> Table:
    t = Table(title=title)
    for col in ("camera", "SLO (s / acc)", "plan", "frames", "p50 s", "SLO met", "accuracy", "cost $"):
        t.add_column(col, overflow="fold")
    for q in workload.queries:
        s, plan = stats.get(q.id), chosen.get(q.id)
        slo = f"{q.slo.latency_s} / {q.slo.min_accuracy}"
        if plan is None or s is None:
            t.add_row(q.id, slo, "not served")
            continue
        where = " ".join(f"{c.op}@{c.tier}" for c in plan.plan.choices)
        done = len(s.latencies)
        p50 = f"{statistics.median(s.latencies):.3f}" if done else "-"
        t.add_row(q.id, slo, where, str(s.sent), p50, f"{s.met / max(s.sent, 1):.0%}",
                  f"{s.correct / max(done, 1):.0%}", f"{s.cost_usd:.2g}")  # fmt: skip
    return t


def stream(title: str, run: Run, seconds: float, console: Console, leave: tuple[float, ServiceProcess] | None) -> None:
    """Every camera at its rate for ``seconds``; ``leave``: (after how long, the daemon to stop)."""
    threads = [threading.Thread(target=_camera, args=(run, q, seconds, n), daemon=True)
               for n, q in enumerate(run.workload.queries)]  # fmt: skip
    if leave is not None:
        threads.append(threading.Thread(target=lambda: (time.sleep(leave[0]), leave[1].stop()), daemon=True))

    def table() -> Table:
        return _table(title, run.workload, run.chosen, run.stats)

    with Live(table(), console=console, refresh_per_second=4) as live:
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads):
            time.sleep(0.25)
            live.update(table())
        live.update(table())


def compare(
    workload: Workload,
    attached: Attached,
    seconds: float,
    console: Console,
    leave: tuple[float, ServiceProcess] | None = None,
) -> dict[str, dict[str, float]]:
    """Profile the operators on the cluster's tiers, plan with Circinus and with per-query greedy,
    and stream every camera under each for ``seconds``; per system: frames sent, within SLO, correct,
    failed, cost, cameras served.  ``leave``: stop that daemon that many seconds into Circinus's run
    (greedy's is then skipped: its plans cannot change)."""
    assert workload.infrastructure is not None
    tiers, speeds = from_infrastructure(workload.infrastructure)
    prices = {t: spec.usd_per_s for t, spec in speeds.items()}
    executor = attached.executor()
    with console.status("profiling the operators on the tiers themselves (accuracy on validation sets here)"):
        measured = measure(workload, {t: speeds[t] for t in attached.tiers}, on_tiers=executor.time)
    plans = {
        "circinus": solve(workload, measured.catalog, tiers, Profiler(measured.sampler)).selection.chosen,
        "greedy": greedy(workload, measured.catalog, tiers, Profiler(measured.sampler, early_stop=False))[0].chosen,
    }
    out: dict[str, dict[str, float]] = {}
    for name, chosen in plans.items():
        if leave is not None and name != "circinus":
            break
        replanner = Replanner(workload, measured.catalog, tiers, Profiler(measured.sampler))
        run = Run(workload, executor, replanner, prices, dict(chosen), {q.id: Stats() for q in workload.queries})
        title = f"{'Circinus' if name == 'circinus' else 'per-query greedy'} placement, {seconds:.0f} s of frames"
        stream(title, run, seconds, console, leave)
        for event in run.events:
            console.print(f"[bold]{event}[/]")
        stats = run.stats.values()
        out[name] = {
            "cameras_served": len(chosen),
            "frames": sum(s.sent for s in stats),
            "within_slo": sum(s.met for s in stats),
            "correct": sum(s.correct for s in stats),
            "failed": sum(s.failed for s in stats),
            "cost_usd": sum(s.cost_usd for s in stats),
            "replans": replanner.replans,
        }
        o = out[name]
        console.print(
            f"{title.split(' placement')[0]}: {len(chosen)} of {len(workload.queries)} cameras served at the start; "
            f"{o['within_slo']} of {o['frames']} frames within their SLO; cost ${o['cost_usd']:.3g}\n"
        )
    return out


def run(
    spec: Path,
    seconds: float,
    leave_after: float | None = None,
    url: str | None = None,
    api_key: str | None = None,
    assign: list[str] | None = None,
) -> int:
    console = Console()
    workload = load(spec)
    if workload.infrastructure is None:
        raise UsageError(f"{spec}: infrastructure", "needed to plan (tiers with capacity, links between them)")
    if url is not None and leave_after is not None:
        raise UsageError("--leave-after", "only on the cluster the app starts itself (without --url)")
    attached = from_arguments(url, api_key, assign or [], workload.infrastructure.tiers)
    if attached is not None:
        console.print("tiers: " + ", ".join(f"{t}={e}" for t, e in attached.tiers.items()))
        compare(workload, attached, seconds, console)
        return 0
    with tempfile.TemporaryDirectory(prefix="edgeweave-traffic-") as tmp, contextlib.ExitStack() as stack:
        with console.status("starting the cloud service, a camera box, a Jetson-class edge box and a coordinator"):
            started = stack.enter_context(cluster_up(workload, Path(tmp)))
        if started.notice:
            console.print(f"[yellow]{started.notice}[/]")
        leave = (leave_after, started.daemons["device"]) if leave_after is not None else None
        compare(workload, started.attached, seconds, console, leave)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=SPEC)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument(
        "--leave-after", type=float, help="stop the camera box's daemon this many seconds in (Circinus re-plans)"
    )
    add_arguments(ap)
    args = ap.parse_args(argv)
    return run(args.spec, args.seconds, args.leave_after, args.url, args.api_key, args.tier)
