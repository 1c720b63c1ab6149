"""An answer's text as OpenAI's tool_calls: whole, or streamed in any split, the same calls; text stays text."""

from __future__ import annotations

import json

import pytest

from edgeweave.generation.tools import call_text, parse_calls
from edgeweave.serving.tool_stream import ToolCallStream, split_answer

CALLS = call_text("lights_dim", {"room": "kitchen", "level": 30}) + "\n" + call_text("door_lock", '{"door":"front"}')


def test_whole_answers() -> None:
    content, calls = split_answer(CALLS)
    assert content is None and [c.function.name for c in calls] == ["lights_dim", "door_lock"]
    assert json.loads(calls[0].function.arguments) == {"room": "kitchen", "level": 30}
    assert len({c.id for c in calls}) == 2
    assert split_answer("Done.") == ("Done.", [])
    assert parse_calls("<tool_call>{broken</tool_call>") == ("<tool_call>{broken</tool_call>", [])


@pytest.mark.parametrize("size", [1, 3, 7, 50, 1000])
def test_streamed_in_any_split(size: int) -> None:
    stream, content, names = ToolCallStream(), "", []
    for i in range(0, len(CALLS), size):
        text, calls = stream.push(CALLS[i : i + size])
        content += text
        names += [c.function.name for c in calls]
    assert content + stream.flush() == "" and names == ["lights_dim", "door_lock"] and stream.calls == 2
    text_stream = ToolCallStream()
    assert "".join(text_stream.push(p)[0] for p in ("Do", "ne.")) + text_stream.flush() == "Done."


def test_a_call_cut_short_comes_back_as_text() -> None:
    stream = ToolCallStream()
    assert stream.push('<tool_call>{"name":"lights') == ("", [])
    assert stream.flush() == '<tool_call>{"name":"lights' and stream.calls == 0
