"""Workload shapes: what each transform does to a trace's rows, and the benchmark reading any CSV."""

from __future__ import annotations

import random
from pathlib import Path

from cloud.tempo.shapes import LONG_PROMPT, SHAPES, SHORT_PROMPT
from cloud.tempo.workload import fit_to_context
from edgeweave.data.traces import TraceRequest, load_trace


def rows(n: int = 2000, seed: int = 0) -> list[TraceRequest]:
    rng = random.Random(seed)
    return [TraceRequest(i * 0.1, rng.randrange(1, 5000), rng.randrange(1, 600)) for i in range(n)]


def test_recorded_is_the_context_scaling_alone_and_every_shape_keeps_arrivals_and_the_context() -> None:
    trace = rows()
    assert SHAPES["recorded"].transform(trace) == [TraceRequest(r.arrival_s, *fit_to_context(r)) for r in trace]
    for shape in SHAPES.values():
        out = shape.transform(trace, seed=1)
        assert [r.arrival_s for r in out] == [r.arrival_s for r in trace], shape.name
        assert all(8 <= r.prompt_tokens <= 320 and 4 <= r.output_tokens <= 160 for r in out), shape.name
        assert out == shape.transform(trace, seed=1), shape.name  # a pure function of (trace, seed)


def test_long_and_short_prompt_stretch_each_row_the_documented_way() -> None:
    trace = rows()
    recorded = SHAPES["recorded"].transform(trace)
    longp, shortp = SHAPES["long_prompt"].transform(trace), SHAPES["short_prompt"].transform(trace)
    for r, raw, lp, sp in zip(recorded, trace, longp, shortp, strict=True):
        assert (lp.prompt_tokens, lp.output_tokens) == fit_to_context(LONG_PROMPT.apply(raw))
        assert (sp.prompt_tokens, sp.output_tokens) == fit_to_context(SHORT_PROMPT.apply(raw))
        assert lp.prompt_tokens >= r.prompt_tokens >= sp.prompt_tokens
        assert lp.output_tokens <= r.output_tokens <= sp.output_tokens
    ratio = sorted(r.prompt_tokens / r.output_tokens for r in longp)[len(longp) // 2]
    assert ratio >= 10  # "tens of times": the median row's prompt over its answer


def test_a_mix_takes_each_row_from_one_of_its_parts_about_half_each() -> None:
    trace = rows()
    longp, shortp = SHAPES["long_prompt"].transform(trace), SHAPES["short_prompt"].transform(trace)
    mix = SHAPES["bimodal"].transform(trace, seed=2)
    took_long = 0
    for m, lp, sp in zip(mix, longp, shortp, strict=True):
        assert m in (lp, sp)
        took_long += m == lp and m != sp
    # 2,000 fair draws: the share is 0.5 +- 0.011 (one sd); 0.05 is 4.5 sd, and the draw is seeded
    assert abs(took_long / len(trace) - 0.5) < 0.05
    assert mix != SHAPES["bimodal"].transform(trace, seed=3)


def write_csv(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    lines += [f"2024-01-01 00:{i // 60:02d}:{i % 60:02d}.000000,{rng.randrange(50, 4000)},{rng.randrange(5, 500)}"
              for i in range(n)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_benchmark_runs_every_policy_and_the_bound_on_a_shape_of_any_csv(tmp_path: Path) -> None:
    from benchmarks.tempo import ORACLE, POLICIES, run_shape
    from cloud.tempo.simulator import EngineShape
    from cloud.tempo.step_time import StepTime

    trace = load_trace(write_csv(tmp_path / "mine.csv", 90))
    engine = EngineShape(max_num_seqs=8, max_batched_tokens=256, num_blocks=160, block_size=16)
    run = run_shape(
        trace, SHAPES["bimodal"], StepTime(0.004, 50e-6, 400e-6, 5e-9), engine, [3.0], 24, 0, lambda *a: None
    )
    row = run.table[3.0]
    assert set(row) == {*POLICIES, ORACLE}
    assert run.capacity_tok_s > 0
    for name in POLICIES:
        assert 0 < row[name]["service_gain"] <= row[ORACLE]["service_gain"] + 1e-6, name


def test_the_benchmark_refuses_a_bad_trace_with_exit_code_2(tmp_path: Path) -> None:
    from benchmarks.tempo import main

    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens\n2024-01-01 00:00:00,5\n")
    assert main(["--quick", "--trace", str(bad)]) == 2
    assert main(["--quick", "--trace", str(write_csv(tmp_path / "short.csv", 10))]) == 2
    assert main(["--quick", "--trace", str(tmp_path / "absent.csv")]) == 2
    assert main(["--quick", "--step-time", "1e-3,2e-6,oops,0"]) == 2
    assert main(["--quick", "--step-time", "1e-3,-2e-6,1e-4,0"]) == 2
