import json

from edgeweave.data.smarthome import eval_set, split_of, take


def test_corpus_is_deterministic() -> None:
    assert take(7, "train", 50) == take(7, "train", 50)
    assert take(7, "train", 50) != take(8, "train", 50)


def test_held_out_prompts_never_appear_in_training() -> None:
    held_out = {ex.prompt for ex in eval_set(300)}
    train = {ex.prompt for ex in take(0, "train", 5000)}
    assert held_out.isdisjoint(train)
    assert all(split_of(p) == "test" for p in held_out)


def test_targets_are_tool_call_json_or_replies() -> None:
    examples = take(3, "train", 500)
    calls = [ex for ex in examples if ex.target.startswith("[")]
    assert 0.8 < len(calls) / len(examples) < 0.97
    for ex in calls:
        parsed = json.loads(ex.target)
        assert 1 <= len(parsed) <= 3 and all("." in c["call"] for c in parsed)
