"""OpenAI function calling and structured output, as typed wire objects.

Requests carry ``tools`` (function definitions with JSON-schema parameters), ``tool_choice``
(``none`` / ``auto`` / ``required`` / one named function) and ``response_format`` (``text``,
``json_object``, ``json_schema``); answers carry assistant ``tool_calls``.  :class:`OutputSpec` is
what travels to the endpoint that decodes (a device daemon, the cloud engine): the tools offered and
the constraint on the output, which that endpoint renders into its model's prompt and enforces by
constrained decoding (:mod:`edgeweave.generation.constrained`).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_CALL = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.S)


def call_text(name: str, arguments: str | dict[str, Any]) -> str:
    """One call as the model writes it."""
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    return CALL_OPEN + json.dumps({"name": name, "arguments": args}, separators=(",", ":")) + CALL_CLOSE


def parse_calls(text: str) -> tuple[str | None, list[FunctionCall]]:
    """An answer's text as (content, calls): calls when it begins with one, as the grammar allows."""
    if not text.lstrip().startswith(CALL_OPEN):
        return text, []
    calls = []
    for body in _CALL.findall(text):
        try:
            obj = json.loads(body)
            calls.append(FunctionCall(name=str(obj["name"]), arguments=json.dumps(obj.get("arguments", {}))))
        except (json.JSONDecodeError, KeyError, TypeError):
            return text, []  # not a well-formed call (an unconstrained endpoint's text): leave it as text
    rest = _CALL.sub("", text).strip()
    return rest or None, calls


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionDef(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("must be 1-64 letters, digits, '_' or '-'")
        return v

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type", "object") != "object":
            raise ValueError("must be a JSON schema of type object")
        return v


class ToolDef(_Strict):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"] = "function"
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaFormat(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    json_schema: dict[str, Any] = Field(alias="schema", default_factory=dict)
    strict: bool | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is given exactly when type is json_schema")
        return self


class FunctionCall(_Strict):
    name: str
    arguments: str  # JSON text, as OpenAI sends it

    def parsed(self) -> dict[str, Any]:
        out = json.loads(self.arguments)
        if not isinstance(out, dict):
            raise ValueError("arguments are not a JSON object")
        return out


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionCallDelta(BaseModel):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(BaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta


class OutputSpec(_Strict):
    """The tools a request offers and the constraint on its output, sent to the decoding endpoint."""

    tools: list[ToolDef] = Field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    response_format: ResponseFormat | None = None
    parallel_tool_calls: bool = True

    @property
    def calls_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def constrained(self) -> bool:
        fmt = self.response_format
        return self.calls_tools or (fmt is not None and fmt.type != "text")
