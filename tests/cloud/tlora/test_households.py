"""Household corpora: deterministic in (name, seed), held-out split disjoint from training, and the
household's own names, scenes and habits in the prompts and its room ids in the targets."""

from __future__ import annotations

import json
from itertools import islice

from edgeweave.data.households import (
    corpus,
    held_out,
    household,
    labelled,
)
from edgeweave.data.smarthome import ROOMS, split_of
from edgeweave.generation.evaluate import household_exact_match


def test_a_household_and_its_corpus_follow_from_name_and_seed() -> None:
    a, b = household("smith", 3), household("smith", 3)
    assert a == b
    assert corpus(a, "train", 200) == corpus(b, "train", 200)
    assert household("smith", 4) != a and household("jones", 3) != a
    assert corpus(household("smith", 4), "train", 50) != corpus(a, "train", 50)


def test_held_out_prompts_never_appear_in_training() -> None:
    h = household("okafor", 1)
    train = corpus(h, "train", 3000)
    test = corpus(h, "test", 300)
    assert {ex.prompt for ex in train}.isdisjoint({ex.prompt for ex in test})
    assert all(split_of(ex.prompt) == "train" for ex in train)
    assert all(split_of(ex.prompt) == "test" for ex in test)


def test_renamed_rooms_nicknames_scenes_and_habits_show_in_the_data() -> None:
    h = household("garcia", 2)
    assert 3 <= len(h.rooms) <= 5 and len(h.scenes) >= 2 and h.nicknames
    examples = corpus(h, "train", 2000)
    prompts = " | ".join(ex.prompt for ex in examples)
    targets = [json.loads(ex.target) for ex in examples if ex.target.startswith("[")]
    rooms_in_targets = {call["room"] for calls in targets for call in calls if "room" in call}
    for room in h.rooms:
        assert room.name in prompts  # the household's name for it is what it says...
        assert room.id in rooms_in_targets and room.canonical not in rooms_in_targets  # ...and its id
    assert any(n.name in prompts for n in h.nicknames)
    assert any(opener.strip() in prompts for opener in h.habits.openers)
    for scene in h.scenes:  # a trigger alone answers exactly the scene's calls
        alone = [ex for ex in examples if ex.prompt in scene.triggers]
        assert alone and all(json.loads(ex.target) == list(scene.calls) for ex in alone)
    kept = set(ROOMS) - {r.canonical for r in h.rooms}
    assert kept <= rooms_in_targets  # the rooms it did not rename keep the grammar's names as ids


def test_kinds_filter_and_exact_match_reuses_the_metric() -> None:
    h = household("smith", 0)
    scenes = held_out(h, 10, {"scene"})
    assert len(scenes) == 10 and len({ex.prompt for ex in scenes}) == 10
    for kind, ex in islice(labelled(h, "train"), 300):
        if kind == "scene":  # the scene's calls first, then those of a command said after it
            calls = json.loads(ex.target)
            assert any(calls[: len(s.calls)] == list(s.calls) for s in h.scenes)
        assert (kind == "chat") != ex.target.startswith("[")
    answers = {ex.prompt: ex.target for ex in scenes}
    perfect = household_exact_match(lambda p: answers[p], h, 10, {"scene"})
    assert perfect.exact_match == 1.0 and perfect.n == 10
    wrong = household_exact_match(lambda p: "[]", h, 10, {"scene"})
    assert wrong.exact_match == 0.0 and len(wrong.failures) == 5
