"""Circinus's pipeline spec: valid DAGs load from Python and YAML; cycles, unknown operators and
pipelines, duplicates and broken files are refused with the problem named."""

from __future__ import annotations

import pytest

from coordinator.circinus.spec import load, parse
from edgeweave.errors import UsageError

OPS = [
    {"name": "detect", "kind": "detector", "tiers": ["device", "edge"], "configs": [{"model": "det-s"}]},
    {"name": "track", "kind": "tracker", "tiers": ["edge"], "configs": [{"model": "iou"}]},
    {"name": "classify", "kind": "classifier", "tiers": ["edge", "cloud"], "configs": [{"model": "cls"}]},
    {"name": "summarize", "kind": "llm", "tiers": ["cloud"], "configs": [{"model": "weave-home-cloud"}]},
]
EDGES = [["detect", "track"], ["detect", "classify"], ["track", "summarize"], ["classify", "summarize"]]
QUERY = {"id": "cam-1", "pipeline": "traffic", "slo": {"latency_s": 1.0, "min_accuracy": 0.5}}


def spec(**changes: object) -> dict[str, object]:
    pipe = {"name": "traffic", "operators": OPS, "edges": EDGES} | changes
    return {"pipelines": [pipe], "queries": [QUERY]}


def test_a_dag_gives_its_order_and_paths() -> None:
    w = parse(spec())
    p = w.pipeline("traffic")
    assert p.order == ("detect", "track", "classify", "summarize")
    assert p.paths == (("detect", "track", "summarize"), ("detect", "classify", "summarize"))
    assert p.operator("detect").configs[0].key == "det-sx1/fp32"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"edges": [*EDGES, ["summarize", "detect"]]}, "cycle: detect -> track -> summarize -> detect"),
        ({"edges": [["detect", "nowhere"]]}, "unknown operator 'nowhere'"),
        ({"operators": [*OPS, OPS[0]]}, "operators named twice: detect"),
        ({"operators": [{**OPS[0], "tiers": ["moon"]}]}, "operators.0.tiers.0"),
        ({"operators": [{**OPS[0], "configs": []}]}, "operators.0.configs"),
    ],
)
def test_bad_pipelines_name_the_problem(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(spec(**changes))


def test_bad_queries_name_the_problem() -> None:
    with pytest.raises(UsageError, match="unknown pipeline 'video'"):
        parse({"pipelines": spec()["pipelines"], "queries": [{**QUERY, "pipeline": "video"}]})
    with pytest.raises(UsageError, match="queries.0.slo.latency_s"):
        parse({"pipelines": spec()["pipelines"], "queries": [{**QUERY, "slo": {"latency_s": -1}}]})
    with pytest.raises(UsageError, match="query ids used twice: cam-1"):
        parse({"pipelines": spec()["pipelines"], "queries": [QUERY, QUERY]})


def test_yaml_files_load_and_broken_ones_are_named(tmp_path) -> None:
    import yaml

    good = tmp_path / "w.yaml"
    good.write_text(yaml.safe_dump(spec()))
    assert load(good).queries[0].slo.latency_s == 1.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelines: [\n")
    with pytest.raises(UsageError, match="bad.yaml: not valid YAML"):
        load(bad)
    with pytest.raises(UsageError, match="missing.yaml: cannot read"):
        load(tmp_path / "missing.yaml")
