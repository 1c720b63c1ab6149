"""The engine benchmark's pure parts: the load sweep, the trace's arrivals at a rate, where
saturation is, the headline ratios, the replay's summary, and finding (or not) llama-server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import engine as bench
from benchmarks.http_replay import LoadResult, Served, summarize
from benchmarks.llama_server import MAKE_TARGET, LlamaServerMissing, LlamaServerOptions, find_binary
from edgeweave.errors import UsageError


def test_load_sweep_defaults_and_given() -> None:
    assert bench.load_sweep(quick=True) == bench.QUICK_LOADS
    assert bench.load_sweep(quick=False) == bench.LOADS
    assert max(bench.QUICK_LOADS) > 1 and max(bench.LOADS) > 1  # both go past capacity
    assert bench.load_sweep(quick=True, given="3, 0.5,1,1") == (0.5, 1.0, 3.0)


@pytest.mark.parametrize("given", ["1", "0,1", "-1,2", "a,b", ""])
def test_load_sweep_refuses_bad_lists(given: str) -> None:
    with pytest.raises(UsageError, match="--loads"):
        bench.load_sweep(quick=True, given=given)


def test_arrivals_keep_the_pattern_at_the_asked_rate() -> None:
    times = bench.arrivals([10.0, 11.0, 13.0, 14.0], rate_req_s=2.0)
    # 4 requests over a span stretched to 4 / 2 = 2 s; the gaps keep their proportions 1:2:1
    assert times == pytest.approx([0.0, 0.5, 1.5, 2.0])
    assert bench.arrivals([5.0, 5.0, 5.0], rate_req_s=4.0) == pytest.approx([0.0, 0.25, 0.5])


def test_saturation_is_where_both_stop_rising() -> None:
    # the engine stops rising after the 2nd load, the peer after the 3rd: both from the 3rd
    assert bench.saturation_index([100, 200, 205, 206], [100, 200, 400, 410]) == 2
    # a fall counts as not rising
    assert bench.saturation_index([100, 90, 95], [300, 250, 260]) == 0
    # still rising at the top of the sweep: the highest load
    assert bench.saturation_index([100, 200, 300], [100, 105, 300]) == 2


def _result(tok_s: float, ttft_p99: float, tbt_p99: float) -> LoadResult:
    return LoadResult(tok_s, 10.0, ttft_p99 / 2, ttft_p99, tbt_p99 / 2, tbt_p99, 8)


def test_peer_summary_ratios_at_saturation_and_at_the_top() -> None:
    points = [
        bench.SweepPoint(0.5, 1.0, _result(100, 0.1, 0.02), _result(100, 0.05, 0.01)),
        bench.SweepPoint(1.0, 2.0, _result(150, 0.4, 0.03), _result(200, 0.1, 0.01)),
        bench.SweepPoint(2.0, 4.0, _result(155, 2.0, 0.03), _result(210, 0.5, 0.02)),
        bench.SweepPoint(3.0, 6.0, _result(156, 4.0, 0.04), _result(212, 1.0, 0.02)),
    ]
    s = bench.peer_summary(points)
    assert s["saturation_load"] == 1.0 and s["saturated"] is True
    assert s["throughput_ratio_vs_llamacpp_server"] == pytest.approx(150 / 200)
    assert s["ttft_p99_ratio_vs_llamacpp_server"] == pytest.approx(0.4 / 0.1)
    assert s["tbt_p99_ratio_vs_llamacpp_server"] == pytest.approx(3.0)
    assert s["throughput_ratio_vs_llamacpp_server_max_load"] == pytest.approx(156 / 212)
    assert s["ttft_p99_ratio_vs_llamacpp_server_max_load"] == pytest.approx(4.0)
    assert s["max_load"] == 3.0


def test_summarize_counts_from_arrival_and_the_servers_tokens() -> None:
    served = [Served(0.0, (0.5, 0.6, 0.8), 3, 10), Served(1.0, (1.2, 2.0), 2, 10)]
    r = summarize(served)
    assert r.makespan_s == pytest.approx(2.0)
    assert r.throughput_tok_s == pytest.approx(5 / 2.0)
    assert r.ttft_p50_s == pytest.approx(0.35)  # TTFTs 0.5 and 0.2, from each request's arrival
    assert r.tbt_p99_s == pytest.approx(0.8, abs=0.02)  # gaps 0.1, 0.2, 0.8: p99 interpolates near the top
    assert r.requests == 2


def test_llama_server_options_give_every_slot_the_whole_context() -> None:
    args = LlamaServerOptions(slots=16, context_per_slot=512, threads=2, batch_tokens=512).args(Path("m.gguf"), 9)
    flags = dict(zip(args[::2], args[1::2], strict=False))
    assert flags["--parallel"] == "16" and flags["--ctx-size"] == str(16 * 512)
    assert flags["--threads"] == flags["--threads-batch"] == "2"


def test_find_binary_names_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(LlamaServerMissing, match=MAKE_TARGET):
        find_binary(env={"PATH": str(tmp_path)}, prefix=str(tmp_path))
    with pytest.raises(LlamaServerMissing, match="EDGEWEAVE_LLAMA_SERVER"):
        find_binary(env={"EDGEWEAVE_LLAMA_SERVER": str(tmp_path / "nope")}, prefix=str(tmp_path))
    binary = tmp_path / "bin" / "llama-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_binary(env={"PATH": ""}, prefix=str(tmp_path)) == binary


def test_cli_exits_2_without_the_server_and_on_a_bad_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEWEAVE_LLAMA_SERVER", str(tmp_path / "missing"))
    assert bench.main(["--quick"]) == 2
    assert MAKE_TARGET in capsys.readouterr().err
    assert os.access("/bin/true", os.X_OK)
    monkeypatch.setenv("EDGEWEAVE_LLAMA_SERVER", "/bin/true")  # found; the trace is refused before it runs
    bad = tmp_path / "t.csv"
    bad.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6805900,10\n")
    assert bench.main(["--quick", "--trace", str(bad)]) == 2
    assert "GeneratedTokens" in capsys.readouterr().err
    assert bench.main(["--quick", "--loads", "2"]) == 2
    assert "--loads" in capsys.readouterr().err
