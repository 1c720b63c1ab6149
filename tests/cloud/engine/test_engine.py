"""The cloud engine against the device torch backend (one request at a time)."""

from __future__ import annotations

import pytest

from cloud.engine.engine import EngineOptions, LLMEngine
from device.backends.torch_backend import TorchBackend
from edgeweave.errors import UsageError
from edgeweave.generation.sampling import SamplingParams
from edgeweave.models.registry import resolve_checkpoint
from edgeweave.models.tokenizer import ByteTokenizer, ChatMessage

MODEL = "weave-home-cloud"
TOK = ByteTokenizer()
SYSTEM = "You control a home: kitchen, office, bedroom, garage. Lights, locks, fans, blinds, speakers. Tool calls only."
COMMANDS = (
    "dim the kitchen lights to 30%",
    "lock the front door",
    "make it 21 degrees in the office and play jazz in the bedroom",
    "set the garage fan to high",
    "close the blinds",
)
GREEDY = SamplingParams(max_tokens=48)


def prompt(cmd: str, system: bool = False) -> list[int]:
    msgs = [ChatMessage("system", SYSTEM)] if system else []
    return TOK.render_chat([*msgs, ChatMessage("user", cmd)])


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return TorchBackend.load(resolve_checkpoint(MODEL))


@pytest.fixture(scope="module")
def reference(backend: TorchBackend) -> list[list[int]]:
    return [backend.generate(prompt(c), GREEDY).token_ids for c in COMMANDS]


def test_batched_greedy_equals_one_at_a_time(reference: list[list[int]]) -> None:
    # 24 tokens per iteration: every prompt is prefilled in chunks beside other requests' decodes
    engine = LLMEngine.load(MODEL, EngineOptions(max_batched_tokens=24, kv_cache_mb=8))
    assert engine.generate([prompt(c) for c in COMMANDS], GREEDY) == reference
    assert engine.stats().blocks_free == engine.stats().blocks_total


@pytest.mark.parametrize("kind", ["packed", "varlen"])
def test_triton_attention_paths_give_the_same_tokens(kind: str, reference: list[list[int]]) -> None:
    # small, as the kernels run in Triton's interpreter on CPU: 24 tokens per iteration split the two prompts
    # (33 and 23 tokens) into chunks so one iteration holds a decode beside a prefill chunk (q_lens 1 and 8),
    # then decode-only iterations; the kernels' own tests cover larger batches
    engine = LLMEngine.load(MODEL, EngineOptions(attention=kind, max_batched_tokens=24))
    short = SamplingParams(max_tokens=4)
    assert engine.generate([prompt(c) for c in COMMANDS[:2]], short) == [r[:4] for r in reference[:2]]


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_preemption_keeps_outputs_identical(mode: str, reference: list[list[int]]) -> None:
    # 8 blocks of 16 tokens for five requests of ~100 tokens: constant preemption
    engine = LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=1, max_batched_tokens=32, preemption=mode))
    assert engine.stats().blocks_total == 8
    assert engine.generate([prompt(c) for c in COMMANDS], GREEDY) == reference
    assert engine.stats().preemptions > 0
    assert engine.stats().blocks_free == 8


def test_prefix_cache_shares_blocks_and_keeps_outputs(backend: TorchBackend) -> None:
    a, b = prompt(COMMANDS[0], system=True), prompt(COMMANDS[1], system=True)
    shared_blocks = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y) // 16
    assert shared_blocks >= 5
    engine = LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=8))
    engine.add_request("a", a, GREEDY)
    while len(engine.seqs["a"].generated) < 2:
        engine.step()
    engine.add_request("b", b, GREEDY)
    engine.step()
    ta, tb = engine.seqs["a"].block_table, engine.seqs["b"].block_table
    assert tb[:shared_blocks] == ta[:shared_blocks]
    assert all(engine.blocks.ref[x] == 2 for x in ta[:shared_blocks])
    assert engine.stats().prefix_hit_blocks == shared_blocks
    out: dict[str, list[int]] = {"a": list(engine.seqs["a"].generated), "b": list(engine.seqs["b"].generated)}
    while engine.has_work():
        for t in engine.step():
            out[t.request_id].append(t.token_id)
    assert out["a"] == backend.generate(a, GREEDY).token_ids
    assert out["b"] == backend.generate(b, GREEDY).token_ids


def test_abort_returns_every_block() -> None:
    engine = LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=2))
    start = engine.stats().blocks_free
    for i, c in enumerate(COMMANDS):
        engine.add_request(str(i), prompt(c), GREEDY)
    for _ in range(6):
        engine.step()
    assert engine.stats().blocks_free < start
    for i in range(len(COMMANDS)):
        assert engine.abort(str(i))
    assert engine.stats().blocks_free == start and not engine.has_work()


def test_resume_tokens_continue_the_same_answer(reference: list[list[int]]) -> None:
    engine = LLMEngine.load(MODEL)
    engine.add_request("r", prompt(COMMANDS[2]), SamplingParams(max_tokens=48 - 10), resume=reference[2][:10])
    tokens = []
    while engine.has_work():
        tokens += [t.token_id for t in engine.step()]
    assert tokens == reference[2][10:]


def test_seeded_sampling_is_reproducible_alone_or_batched() -> None:
    params = SamplingParams(max_tokens=30, temperature=0.9, top_p=0.9, seed=11)
    alone = LLMEngine.load(MODEL).generate([prompt(COMMANDS[0])], params)[0]
    batched = LLMEngine.load(MODEL).generate([prompt(c) for c in COMMANDS[:3]], params)[0]
    assert alone == batched


def test_bad_requests_name_the_field_and_the_limit() -> None:
    engine = LLMEngine.load(MODEL, EngineOptions(kv_cache_mb=1))
    with pytest.raises(UsageError, match="context of 512 tokens") as e:
        engine.add_request("x", [5] * 600, GREEDY)
    assert e.value.field == "messages"
    with pytest.raises(UsageError, match="outside vocabulary") as e:
        engine.add_request("x", [5, 99999], GREEDY)
    assert e.value.field == "prompt"
    with pytest.raises(UsageError, match="KV cache") as e:
        engine.add_request("x", [5] * 100, SamplingParams(max_tokens=300))
    assert e.value.field == "max_tokens"
    assert not engine.has_work()


# ~40 s in Triton's interpreter: the packed kernel over shared-prefix groups stays in `make test` at kernel
# level (tests/kernels: test_shared_prefix_family_gqa_and_short_prefills) and the engine's packed path in
# test_triton_attention_paths_give_the_same_tokens[packed]
@pytest.mark.slow
def test_packed_decode_over_a_shared_prefix_family(backend: TorchBackend) -> None:
    prompts = [prompt(c, system=True) for c in COMMANDS[:3]]
    engine = LLMEngine.load(MODEL, EngineOptions(attention="packed"))
    engine.add_request("first", prompts[0], SamplingParams(max_tokens=8))
    out: dict[str, list[int]] = {"first": [t.token_id for t in engine.step()], "1": [], "2": []}
    for i, p in enumerate(prompts[1:], 1):  # the first prompt's blocks are cached now: these share them
        engine.add_request(str(i), p, SamplingParams(max_tokens=8))
    seen_family = False
    while engine.has_work():
        running = [s for s in engine.seqs.values() if s.computed == len(s.tokens) - 1]
        seen_family |= len({s.block_table[0] for s in running}) < len(running)
        for t in engine.step():
            out[t.request_id].append(t.token_id)
    assert seen_family and engine.stats().prefix_hit_blocks > 0
    expected = [backend.generate(p, SamplingParams(max_tokens=8)).token_ids for p in prompts]
    assert [out["first"], out["1"], out["2"]] == expected


def test_tempo_is_the_default_and_orders_without_changing_tokens(reference: list[list[int]], tmp_path) -> None:
    from cloud.policies import make_policy
    from cloud.tempo.length import LengthBound
    from cloud.tempo.policy import Tempo
    from cloud.tempo.remaining import BoundLengths
    from edgeweave.data.traces import load_trace
    from edgeweave.wire.slo import CompoundSLO, DeadlineSLO, LatencySLO

    model = LengthBound.fit(load_trace()[:600]).save(tmp_path / "length.pkl")
    options = EngineOptions(max_batched_tokens=24, kv_cache_mb=8, length_model=model)
    engine = LLMEngine.load(MODEL, options, make_policy(options))  # the policy the cloud serves with
    assert isinstance(engine.policy, Tempo) and isinstance(engine.policy.lengths, BoundLengths)
    slos = [
        LatencySLO(ttft_s=0.5, tbt_s=0.05),
        DeadlineSLO(type="deadline", deadline_s=2.0),
        CompoundSLO(type="compound", workflow_id="w", stage=0, deadline_s=5.0),
        DeadlineSLO(type="deadline", deadline_s=0.01),  # hopeless: served last, still served
        None,  # no SLO: the default latency SLO
    ]
    for i, (c, slo) in enumerate(zip(COMMANDS, slos, strict=True)):
        engine.add_request(f"r{i}", prompt(c), GREEDY, slo=slo)
    out: dict[str, list[int]] = {f"r{i}": [] for i in range(len(COMMANDS))}
    while engine.has_work():
        for t in engine.step():
            out[t.request_id].append(t.token_id)
    assert list(out.values()) == reference
    assert engine.stats().blocks_free == engine.stats().blocks_total


def test_logprobs_are_the_raw_logits_log_softmax_and_leave_tokens_unchanged(reference: list[list[int]]) -> None:
    import torch

    from edgeweave.generation.logprobs import token_logprob
    from edgeweave.models.checkpoint import load_checkpoint

    engine = LLMEngine.load(MODEL, EngineOptions(max_batched_tokens=24, kv_cache_mb=8))
    params = SamplingParams(max_tokens=48, logprobs=3)
    for i, c in enumerate(COMMANDS[:3]):
        engine.add_request(str(i), prompt(c), params)
    out: dict[str, list] = {str(i): [] for i in range(3)}
    while engine.has_work():
        for t in engine.step():
            out[t.request_id].append(t)
    assert [[t.token_id for t in out[str(i)]] for i in range(3)] == reference[:3]
    dense = load_checkpoint(resolve_checkpoint(MODEL)).eval()
    for i, c in enumerate(COMMANDS[:3]):
        ids = prompt(c) + reference[i]
        with torch.inference_mode():
            logits = dense(torch.tensor([ids]))[0].float().numpy()
        for j, t in enumerate(out[str(i)]):
            lp = t.logprob
            assert lp is not None and lp.id == t.token_id and lp.bytes == list(TOK.token_bytes(t.token_id))
            assert [a.id for a in lp.top_logprobs][:1] == [t.token_id] and len(lp.top_logprobs) == 3  # greedy: the top
            want = token_logprob(logits[len(ids) - len(reference[i]) - 1 + j], t.token_id, 3, TOK.token_bytes)
            # both paths are float32 on the CPU (paged, chunked attention vs one dense pass): only the summation
            # order differs, ~1e-6 on these logits; 1e-4 leaves a wide margin on any x86 CPU
            assert lp.logprob == pytest.approx(want.logprob, abs=1e-4)
            assert [a.id for a in lp.top_logprobs] == [a.id for a in want.top_logprobs]
    plain = LLMEngine.load(MODEL)
    plain.add_request("p", prompt(COMMANDS[0]), SamplingParams(max_tokens=4))
    assert all(t.logprob is None for t in plain.step())


def test_a_lora_adapter_is_refused_naming_the_field() -> None:
    engine = LLMEngine.load(MODEL)
    with pytest.raises(UsageError, match="no LoRA adapters") as e:
        engine.add_request("x", prompt(COMMANDS[0]), GREEDY, lora_adapter="kitchen")
    assert e.value.field == "lora_adapter" and not engine.has_work()
