"""The simulator driving tLoRA's scheduler and the baselines over a small trace; the trace reader
and its job-class mapping (the Pollux file, an unseen application, bad files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.tlora.baselines import FifoColocate, SoloFifo, SoloSplit
from cloud.tlora.cost import JobShape, StepCost
from cloud.tlora.policy import TloraScheduler, workers_of
from cloud.tlora.simulator import Arrival, simulate
from cloud.tlora.trace import POLLUX, job_class, load_jobs
from edgeweave.errors import UsageError

COST = StepCost(fixed_s=0.1, per_job_s=0.01, per_token_s=1e-5, per_lora_token_s=1e-5)
CAP = 10_000


def shape(name: str, steps: int, bound: float = 1.5) -> JobShape:
    return JobShape(name, 8, 4, 100, 0.1, steps, bound)


def test_solo_fifo_by_hand() -> None:
    a, b = shape("a", 100), shape("b", 50)
    alone_a, alone_b = 100 * COST.alone_s(a), 50 * COST.alone_s(b)
    r = simulate([Arrival(0.0, a), Arrival(0.0, b)], SoloFifo(COST, workers_of(1, CAP)), COST)
    assert r.jct_s["a"] == pytest.approx(alone_a)
    assert r.jct_s["b"] == pytest.approx(alone_a + alone_b)  # b waited for a
    assert r.samples == pytest.approx(4 * 150)
    assert r.utilisation == pytest.approx(1.0)
    assert r.max_slowdown == pytest.approx(1.0)


def test_tlora_beats_per_job_on_a_burst_and_keeps_its_bounds() -> None:
    arrivals = [Arrival(i * 0.5, shape(f"j{i}", 40 + 20 * (i % 3))) for i in range(8)]
    runs = {
        s.name: simulate(arrivals, s, COST)
        for s in (
            TloraScheduler(COST, workers_of(1, CAP)),
            SoloFifo(COST, workers_of(1, CAP)),
            SoloSplit(COST, workers_of(1, CAP)),
            FifoColocate(COST, workers_of(1, CAP)),
        )
    }
    assert all(len(r.jct_s) == 8 for r in runs.values())
    # every policy trains the same samples; tLoRA in less time
    assert len({round(r.samples, 6) for r in runs.values()}) == 1
    assert runs["tlora"].throughput > runs["solo_fifo"].throughput
    assert runs["tlora"].jct_mean_s < runs["solo_fifo"].jct_mean_s
    assert runs["tlora"].max_slowdown <= 1.5 + 1e-9  # the bound is the merge rule's, on this model
    assert runs["fifo_colocate"].max_slowdown > 1.5  # no bound: eight jobs on one step
    assert 0 < runs["solo_split"].utilisation <= 1.0


def test_pollux_trace_maps_to_job_classes() -> None:
    if not POLLUX.is_file():
        pytest.skip(f"{POLLUX} is not beside this checkout")
    jobs = load_jobs(POLLUX)
    assert len(jobs) == 160 and jobs[0].time_s == 0.0
    assert all(a.time_s <= b.time_s for a, b in zip(jobs, jobs[1:], strict=False))
    classes = [job_class(j) for j in jobs]
    assert {c.rank for c in classes} <= {4, 8, 16, 32, 64} and len({c.rank for c in classes}) >= 3
    assert all(2 <= c.batch_size <= 8 for c in classes)


def test_unseen_application_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "jobs.csv"
    good.write_text(
        "name,time,application,num_replicas,batch_size\n"
        "Wav2Vec Big#1,30,wav2vec,64,65536\nbert-0,10,bert,1,16\nbert-1,20,bert,2,16\n"
    )
    jobs = load_jobs(good)
    assert [j.name for j in jobs] == ["bert-0", "bert-1", "Wav2Vec Big#1"] and jobs[0].time_s == 0.0
    big = job_class(jobs[2])
    assert (big.household, big.rank, big.batch_size, big.slowdown_bound) == ("wav2vec-big-1", 64, 8, 2.0)
    assert job_class(jobs[0]).n_examples == job_class(jobs[1]).n_examples  # one application, one size
    assert job_class(jobs[0]) == job_class(load_jobs(good)[0])  # stable across runs (no salted hash)
    for body, problem in (
        ("name,time,application\nx,1,y\n", "missing column(s) num_replicas, batch_size"),
        ("name,time,application,num_replicas,batch_size\nx,soon,y,1,2\n", "line 2: bad row"),
        ("name,time,application,num_replicas,batch_size\nx,1,y,0,2\n", "at least 1"),
        ("name,time,application,num_replicas,batch_size\n", "no jobs"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text(body)
        with pytest.raises(UsageError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            load_jobs(bad)
    with pytest.raises(UsageError, match="cannot read"):
        load_jobs(tmp_path / "absent.csv")


def test_the_benchmark_refuses_a_bad_trace_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.tlora import main

    bad = tmp_path / "jobs.csv"
    bad.write_text("name,time\nx,1\n")
    assert main(["--quick", "--trace", str(bad)]) == 2
    assert "missing column(s) application" in capsys.readouterr().err
    one = tmp_path / "one.csv"
    one.write_text("name,time,application,num_replicas,batch_size\nx,0,y,1,8\n")
    assert main(["--quick", "--trace", str(one)]) == 2
