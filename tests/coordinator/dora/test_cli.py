"""``edgeweave dora``: the plan table reads at 80 columns; against a live cluster (a coordinator and
a device daemon as processes) a QoE no plan meets is one line and exit 2, and a refusal names its
field once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rich.console import Console

from coordinator.dora.cli import plans_table
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.wire.dora import PipelineView, PlanView, StageView
from tests.cli import run_cli


def _plan(*pipelines: tuple[int, list[tuple[str, int, int]]]) -> PlanView:
    return PlanView(
        pipelines=[
            PipelineView(samples=n, stages=[StageView(device=d, layers=(a, b)) for d, a, b in stages])
            for n, stages in pipelines
        ],
        micro_batches=4,
        latency_s=0.123456,
        throughput=1234.5,
        energy_j=12.345,
    )


def test_the_plan_table_is_readable_at_80_columns() -> None:
    chain = [("jetson-1", 0, 3), ("pi-1", 3, 6), ("phone-1", 6, 12)]
    plans = [_plan((5, chain), (3, [("pi-2", 0, 12)])), _plan((8, [("jetson-1", 0, 12)]))]
    console = Console(width=80, record=True)
    console.print(plans_table(plans, "weave-home-device: inference, batch 8"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for whole in ("jetson-1[0:3] ->", "phone-1[6:12] x5", "pi-2[0:12] x3", "jetson-1[0:12] x8", "device[layers]",
                  "latency s", "samples/s", "energy J", "0.1235", "1234.5", "12.345"):  # fmt: skip
        assert whole in text, (whole, text)
    assert "…" not in text


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("dora-cli")) as c:
        (device,) = c.start_devices((LocalDevice("pi-1", "pi", "llamacpp", threads=1),), advertise=False)
        c.start_coordinator(mdns=False, static=(device.url,))
        c.wait_until(lambda up: "pi-1" in up, timeout_s=30)
        yield c


def _cli(c: LocalCluster, *args: str) -> tuple[int, str, str]:
    out = run_cli("dora", *args, "--url", c.url, "--api-key", c.api_key, "--seq-len", "8", timeout=300)
    return out.returncode, out.stdout, out.stderr


def test_an_unmeetable_qoe_is_one_line_and_exit_2(cluster: LocalCluster) -> None:
    code, out, err = _cli(cluster, "plan", "--batch", "2", "--max-latency", "1e-9")
    assert code == 2 and out == "", out
    assert err.strip() == (
        "edgeweave: error: --max-latency: no plan meets the QoE (at most 1e-09 s per request) on the cluster's devices"
    ), err


def test_a_refusal_names_its_field_once(cluster: LocalCluster) -> None:
    code, _, err = _cli(cluster, "run", "--batch", "2", "--plan", "99")
    assert code == 2 and err.startswith("edgeweave: error: plan: 99 is past the ") and "plan: plan:" not in err, err
    code, _, err = _cli(cluster, "plan", "--batch", "0")
    assert code == 2 and err.startswith("edgeweave: error: batch: ") and "batch: batch:" not in err, err
    bad = run_cli("dora", "plan", "--url", cluster.url, "--api-key", "wrong")
    assert bad.returncode == 2 and "invalid API key" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
