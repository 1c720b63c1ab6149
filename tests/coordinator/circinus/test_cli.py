"""``edgeweave circinus plan SPEC`` on real (vision) operators: a plan per servable query, the
reason for an impossible one, and exit code 2 with one line for a bad spec."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cli import run_cli

SPEC = {
    "pipelines": [
        {
            "name": "cams",
            "input_bytes": 12288,
            "operators": [
                {"name": "detect", "kind": "detector", "tiers": ["device", "edge"],
                 "configs": [{"model": "traffic-det-w25-r32"}, {"model": "traffic-det-w50-r64"}]},
                {"name": "classify", "kind": "classifier", "tiers": ["edge", "cloud"],
                 "configs": [{"model": "traffic-cls-w25-r32"}, {"model": "weave-traffic-cnn"}]},
            ],
            "edges": [["detect", "classify"]],
        }
    ],
    "queries": [
        {"id": "easy", "pipeline": "cams", "slo": {"latency_s": 0.5, "min_accuracy": 0.5}},
        {"id": "greedy-for-accuracy", "pipeline": "cams", "slo": {"latency_s": 0.5, "min_accuracy": 0.99}},
    ],
    "infrastructure": {
        "tiers": {"device": {"factor": 4, "capacity": 1}, "edge": {"factor": 1, "capacity": 1, "usd_per_hour": 0.1},
                  "cloud": {"factor": 0.2, "capacity": 4, "usd_per_hour": 2}},
        "links": [{"between": ["device", "edge"], "rtt_ms": 5, "mbit": 50},
                  {"between": ["edge", "cloud"], "rtt_ms": 40, "mbit": 100},
                  {"between": ["device", "cloud"], "rtt_ms": 45, "mbit": 20}],
    },
}  # fmt: skip


def test_plan_prints_a_plan_per_servable_query_and_why_not_for_the_rest(tmp_path: Path) -> None:
    spec = tmp_path / "cams.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    done = run_cli("circinus", "plan", str(spec), COLUMNS="200")
    assert done.returncode == 0, done.stderr
    assert "detect=traffic-det" in done.stdout and "classify=" in done.stdout
    assert "not served: min_accuracy: 0.99 is above the best plan's" in done.stdout
    assert "goodput 1.00 of 2.00 calls/s" in done.stdout


def test_bad_specs_are_one_line_and_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    cyclic = {
        **SPEC,
        "pipelines": [{**SPEC["pipelines"][0], "edges": [["detect", "classify"], ["classify", "detect"]]}],
    }
    spec.write_text(yaml.safe_dump(cyclic))
    done = run_cli("circinus", "plan", str(spec))
    assert done.returncode == 2 and "cycle: detect -> classify -> detect" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    spec.write_text(yaml.safe_dump({k: v for k, v in SPEC.items() if k != "infrastructure"}))
    done = run_cli("circinus", "plan", str(spec))
    assert done.returncode == 2 and "infrastructure: needed to plan" in done.stderr
    done = run_cli("circinus", "plan", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_the_plan_table_is_readable_at_80_columns() -> None:
    from rich.console import Console

    from coordinator.circinus.cli import plan_table
    from coordinator.circinus.planner import Choice, PipelinePlan, Scored
    from coordinator.circinus.spec import SLO, OperatorConfig, Query

    slo = SLO(latency_s=0.5, min_accuracy=0.5)
    queries = [Query(id="cam-3-intersection-north", pipeline="traffic", slo=slo), Query(id="q2", pipeline="p", slo=slo)]
    choices = (
        Choice("detect", OperatorConfig(model="traffic-det-w25-r32"), "device"),
        Choice("classify", OperatorConfig(model="traffic-cls-w50-r64"), "edge"),
        Choice("summarize", OperatorConfig(model="weave-home-device"), "cloud"),
    )
    chosen = {"cam-3-intersection-north": Scored(PipelinePlan("traffic", choices), 0.1234, 0.953, 1.2e-5, ())}
    console = Console(width=80, record=True)
    console.print(plan_table("Circinus plan for apps/traffic/workload.yaml", queries, chosen, console.width))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for whole in ("detect=traffic-det-w25-r32@device", "classify=traffic-cls-w50-r64@edge",
                  "summarize=weave-home-device@cloud", "0.123", "0.953", "1.2e-05", "lat s", "$/call"):  # fmt: skip
        assert whole in text, (whole, text)
    assert "…" not in text and "q2" not in text  # nothing cut short; unserved queries are reported below it
