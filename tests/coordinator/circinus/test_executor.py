"""Circinus's executor on real processes: a 3-operator pipeline (detect -> classify -> summarize)
across two device daemons and the cloud service, each operator where its plan put it, answering
what the same operators answer in-process, directly and relayed by a coordinator; bad operator
calls are 400s naming the field (an unknown endpoint a 404 naming ``endpoint``); a daemon that
leaves fails with its tier named."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.circinus.cluster import attach
from coordinator.circinus.executor import Endpoint, Executor, OperatorError
from coordinator.circinus.planner import Choice, PipelinePlan
from coordinator.circinus.spec import parse
from edgeweave.cluster.cluster_files import LocalDevice
from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.cluster.processes import ServiceProcess
from edgeweave.errors import UsageError
from edgeweave.models.vision import CLASSES, DETECT_CLASSES, frames
from edgeweave.operators.runtime import LLMOp, VisionOp
from edgeweave.wire.auth import ClusterKey
from tests.cloud.test_server import KEY

DET, CLS, LLM = "traffic-det-w25-r32", "traffic-cls-w50-r64", "weave-home-device"
PIPELINE = parse(
    {
        "pipelines": [
            {
                "name": "traffic",
                "operators": [
                    {"name": "detect", "kind": "detector", "tiers": ["device"], "configs": [{"model": DET}]},
                    {"name": "classify", "kind": "classifier", "tiers": ["edge"], "configs": [{"model": CLS}]},
                    {"name": "summarize", "kind": "llm", "tiers": ["cloud"], "configs": [{"model": LLM}]},
                ],
                "edges": [["detect", "classify"], ["detect", "summarize"], ["classify", "summarize"]],
            }
        ]
    }
).pipelines[0]
PLAN = PipelinePlan("traffic", tuple(Choice(op.name, op.configs[0], op.tiers[0]) for op in PIPELINE.operators))


def test_a_pipeline_runs_across_two_daemons_and_the_cloud(cloud_server: ServiceProcess, tmp_path: Path) -> None:
    with LocalCluster(tmp_path) as cluster:
        phone, pi = cluster.start_devices(
            (
                LocalDevice("phone-1", "phone", "llamacpp", threads=1),
                LocalDevice("pi-1", "pi", "llamacpp", threads=1),
            ),
            advertise=False,
        )
        key = ClusterKey(cluster.secret.encode())
        ex = Executor({"device": Endpoint(phone.url, key), "edge": Endpoint(pi.url, key),
                       "cloud": Endpoint(cloud_server.url, api_key=KEY)})  # fmt: skip
        x, _ = frames(3, seed=5)
        det, cls, llm = VisionOp(DET), VisionOp(CLS), LLMOp(LLM)
        for i in range(3):
            frame = x[i : i + 1]
            got = ex.invoke(PLAN, PIPELINE, frame)
            want_det = DETECT_CLASSES[int(det(frame.numpy()).argmax())]
            want_cls = CLASSES[int(cls(frame.numpy()).argmax())]
            assert got.outputs["detect"] == want_det and got.outputs["classify"] == want_cls
            assert got.outputs["summarize"] == llm(f"road report: classify saw {want_cls}; detect saw {want_det}")
            assert got.tiers == {"detect": "device", "classify": "edge", "summarize": "cloud"}
            assert got.latency_s >= max(got.compute_s.values()) > 0
        with pytest.raises(OperatorError, match="HTTP 400: model: .*no-such-model"):
            Endpoint(phone.url, key).post(_frame({"model": "no-such-model"}))
        with pytest.raises(OperatorError, match="HTTP 400: prompt"):
            Endpoint(cloud_server.url, api_key=KEY).post(_frame({"model": LLM}))
        with pytest.raises(OperatorError, match="HTTP 401"):
            Endpoint(cloud_server.url, api_key="wrong").post(_frame({"model": DET}))
        with pytest.raises(OperatorError, match="not signed|HTTP 401"):
            Endpoint(pi.url, ClusterKey(b"x" * 32)).post(_frame({"model": DET}))
        assert ex.time(DET, "device") > 0 and ex.time(LLM, "cloud") > 0  # profiling on the tiers themselves

        # the same through a coordinator, holding only its URL and API key
        cluster.start_coordinator(
            mdns=False, static=(phone.url, pi.url), cloud=(("gpu", cloud_server.url + "/v1", KEY, LLM),)
        )
        cluster.wait_until(lambda up: up == {"phone-1", "pi-1"}, 30)
        with pytest.raises(UsageError, match="--tier: edge=jetson-1: the coordinator lists no such endpoint"):
            attach(cluster.url, cluster.api_key, ("device", "edge", "cloud"), {"edge": "jetson-1"})
        with pytest.raises(UsageError, match="--api-key: the coordinator .* refused it"):
            attach(cluster.url, "wrong", ("device",))
        relayed = attach(
            cluster.url, cluster.api_key, ("device", "edge", "cloud"), {"device": "phone-1", "edge": "pi-1"}
        )
        assert relayed.tiers == {"device": "phone-1", "edge": "pi-1", "cloud": "cloud:gpu"}
        via = relayed.executor()
        direct = ex.invoke(PLAN, PIPELINE, x[:1])
        assert via.invoke(PLAN, PIPELINE, x[:1]).outputs == direct.outputs
        assert via.time(LLM, "cloud") > 0
        coordinator = Endpoint(cluster.url, api_key=cluster.api_key, path="/v1/circinus/run/jetson-1")
        with pytest.raises(OperatorError, match="HTTP 404: endpoint: no device or cloud endpoint 'jetson-1'"):
            coordinator.post(_frame({"model": DET}))
        with pytest.raises(OperatorError, match="HTTP 400: model: .*no-such-model"):
            via.endpoints["edge"].post(_frame({"model": "no-such-model"}))
        with pytest.raises(OperatorError, match="HTTP 400: prompt"):
            via.endpoints["cloud"].post(_frame({"model": LLM}))

        phone.stop()  # the camera box leaves: the failure names its tier, for the re-planner
        with pytest.raises(OperatorError, match="device: .*unreachable") as gone:
            ex.invoke(PLAN, PIPELINE, x[:1])
        assert gone.value.tier == "device"
        with pytest.raises(OperatorError, match="device: .*HTTP (404|502): endpoint") as gone:
            via.invoke(PLAN, PIPELINE, x[:1])
        assert gone.value.tier == "device"


def _frame(meta: dict[str, object]) -> bytes:
    import torch

    from edgeweave.wire.tensor_frames import encode, pack

    return pack([encode(torch.zeros(1, 3, 64, 64), meta)])
