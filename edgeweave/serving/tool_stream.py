"""An answer's text as OpenAI function calling returns it: content, or ``tool_calls``, streamed or whole.

The grammar (:mod:`edgeweave.generation.constrained`) lets an answer be either text that does not
start with ``<`` or calls in the Hermes format, so the first character decides: text streams as
``content`` deltas; calls are held until each ``</tool_call>`` closes, then sent as one
``tool_calls`` delta (name and whole arguments; OpenAI may split the arguments, clients join them).
What never closed (an answer cut by ``max_tokens``) is returned as content, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeweave.generation.tools import CALL_CLOSE, FunctionCall, ToolCall, parse_calls
from edgeweave.wire.openai_api import new_id


def tool_call(call: FunctionCall) -> ToolCall:
    return ToolCall(id=new_id("call"), function=call)


def split_answer(text: str) -> tuple[str | None, list[ToolCall]]:
    """A whole answer's content and calls."""
    content, calls = parse_calls(text)
    return content, [tool_call(c) for c in calls]


@dataclass
class ToolCallStream:
    """Feeds an answer's text deltas; gives back the content to stream and the calls completed."""

    calls: int = 0  # completed so far
    _mode: str | None = None  # "text" or "calls", once the first character has come
    _buffer: str = field(default="")

    def push(self, text: str) -> tuple[str, list[ToolCall]]:
        if self._mode is None:
            self._buffer += text
            head = self._buffer.lstrip()
            if not head:
                return "", []
            self._mode = "calls" if head.startswith("<") else "text"
            text, self._buffer = self._buffer, ""
        if self._mode == "text":
            return text, []
        self._buffer += text
        done: list[ToolCall] = []
        while (end := self._buffer.find(CALL_CLOSE)) >= 0:
            piece, self._buffer = self._buffer[: end + len(CALL_CLOSE)], self._buffer[end + len(CALL_CLOSE) :]
            _, parsed = parse_calls(piece.lstrip())
            done += [tool_call(c) for c in parsed]
        self.calls += len(done)
        return "", done

    def flush(self) -> str:
        """Text left that never became a call (or held while the first character was blank)."""
        rest, self._buffer = self._buffer, ""
        return rest
