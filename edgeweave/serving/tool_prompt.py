"""A conversation rendered for the model, with the tools a request offers declared in its prompt.

The declaration is the Hermes one (Qwen2.5's and SmolLM's templates write it so: the function
signatures inside ``<tools>``, then how to answer with ``<tool_call>``), added to the system turn.
A tokenizer may opt out (``TOOLS_IN_PROMPT = False``): the byte models learn this house's tools in
training and have no room in their context for twenty schemas; the grammar
(:mod:`edgeweave.generation.constrained`) holds every model to the declared schemas either way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgeweave.generation.tools import OutputSpec
from edgeweave.models.tokenizer import ChatMessage
from edgeweave.wire.protocol import Message

if TYPE_CHECKING:
    from edgeweave.models.tokenizer import Tokenizer

_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>{"name": <function-name>, "arguments": <args-json-object>}'
    "</tool_call>"
)


def tools_block(spec: OutputSpec) -> str:
    lines = [json.dumps(t.model_dump(exclude_none=True)) for t in spec.tools]
    return _TOOLS_HEAD + "\n".join(lines) + _TOOLS_TAIL


def render_messages(tokenizer: Tokenizer, messages: Sequence[Message], output: OutputSpec | None = None) -> list[int]:
    """Prompt ids for a reply to ``messages``, declaring ``output``'s tools where the model reads them."""
    chat = [ChatMessage(m.role, m.content) for m in messages]
    if output is not None and output.calls_tools and getattr(tokenizer, "TOOLS_IN_PROMPT", True):
        block = tools_block(output)
        if chat and chat[0].role == "system":
            chat[0] = ChatMessage("system", f"{chat[0].content}\n\n{block}")
        else:
            chat.insert(0, ChatMessage("system", block))
    return tokenizer.render_chat(chat)
