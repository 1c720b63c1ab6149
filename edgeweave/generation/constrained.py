"""Constrained decoding: tool calls and JSON output held to their schemas, token by token.

An :class:`~edgeweave.generation.tools.OutputSpec` becomes a Lark grammar for llguidance (the library
behind guidance and llama.cpp's and vLLM's structured output): ``tool_choice: auto`` allows plain
text (not starting with ``<``) or one or more calls, ``required`` only calls, a named function only
that one; each call is ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` with the arguments
held to the function's JSON schema (the Hermes format that Qwen, SmolLM and most open models use),
and ``response_format`` a JSON object or a JSON schema.  :class:`Constraint` masks each step's logits
to the tokens the grammar allows, so even a tiny model produces calls every client can parse; an
answer resumed elsewhere (a migration) replays its resumed tokens through the matcher first.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import llguidance
import numpy as np

from edgeweave.errors import UsageError
from edgeweave.generation.sampling import Sampler, SamplingParams
from edgeweave.generation.tools import CALL_CLOSE, CALL_OPEN, OutputSpec, ToolDef

if TYPE_CHECKING:
    from edgeweave.models.tokenizer import Tokenizer

# compact JSON (no whitespace between tokens), as the calls are written in training and in call_text;
# lenient: schema keywords llguidance does not enforce (formats, ...) are ignored, not refused
_JSON_OPTIONS = {"whitespace_flexible": False, "lenient": True}


def _json(schema: dict[str, Any]) -> str:
    return "%json " + json.dumps({**schema, "x-guidance": _JSON_OPTIONS})


def _call_rule(tool: ToolDef) -> str:
    params = dict(tool.function.parameters)
    defs = params.pop("$defs", None)  # "#/$defs/..." references resolve from the root: hoist them there
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"name": {"const": tool.function.name}, "arguments": params},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return f'"{CALL_OPEN}" {_json(schema)} "{CALL_CLOSE}"'


def grammar(spec: OutputSpec) -> str:
    """The Lark grammar (llguidance's dialect) for the output ``spec`` allows."""
    fmt = spec.response_format
    if spec.calls_tools:
        tools = spec.tools
        choice = spec.tool_choice
        if not isinstance(choice, str):
            tools = [t for t in tools if t.function.name == choice.function.name]
            if not tools:
                raise UsageError("tool_choice", f"names {choice.function.name!r}, which is not among tools")
        rules = [f"call_{i}: {_call_rule(t)}" for i, t in enumerate(tools)]
        call = "call: " + " | ".join(f"call_{i}" for i in range(len(tools)))
        calls = 'calls: call ("\\n" call)*' if spec.parallel_tool_calls else "calls: call"
        start = "start: calls" if choice != "auto" else "start: TEXT | calls"
        return "\n".join([start, calls, call, *rules, r"TEXT: /[^<](?s:.)*/"])
    if fmt is not None and fmt.type == "json_schema":
        assert fmt.json_schema is not None
        return "start: " + _json(fmt.json_schema.json_schema or {"type": "object"})
    return "start: " + _json({"type": "object"})


class _Vocabulary:
    """What llguidance knows of a tokenizer: each token's bytes (specials marked with 0xff, as
    llguidance's own llama.cpp bridge marks control tokens) and how text encodes."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.eos_token_id = min(tokenizer.stop_ids)
        self.bos_token_id = None
        self.tokens: list[bytes] = []
        self.special_token_ids: list[int] = []
        for i in range(tokenizer.vocab_size):
            piece = tokenizer.token_bytes(i)
            if not piece:
                piece = f"\xff<|special_{i}|>".encode("latin-1")
                self.special_token_ids.append(i)
            self.tokens.append(piece)
        self._encode = tokenizer.encode

    def __call__(self, text: bytes) -> list[int]:
        return list(self._encode(text.decode("utf-8", errors="replace")))


_LL_TOKENIZERS: weakref.WeakKeyDictionary[Any, llguidance.LLTokenizer] = weakref.WeakKeyDictionary()


def ll_tokenizer(tokenizer: Tokenizer) -> llguidance.LLTokenizer:
    """The llguidance tokenizer for ``tokenizer`` (built once per tokenizer object: it is costly)."""
    ll = _LL_TOKENIZERS.get(tokenizer)
    if ll is None:
        wrapped = llguidance.TokenizerWrapper(_Vocabulary(tokenizer))
        ll = llguidance.LLTokenizer(wrapped, n_vocab=tokenizer.vocab_size, eos_token=sorted(tokenizer.stop_ids))
        _LL_TOKENIZERS[tokenizer] = ll
    return ll


def _field(spec: OutputSpec) -> str:
    """The request field a spec's grammar comes from (what its errors name)."""
    return "tools" if spec.calls_tools else "response_format"


def check_spec(spec: OutputSpec) -> None:
    """Refuse a spec whose grammar llguidance cannot build (a bad JSON schema), naming the field."""
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar(spec))
    if is_error:
        raise UsageError(_field(spec), f"schema cannot be enforced: {'; '.join(messages)[:300]}")


class Constraint:
    """One answer's matcher: masks logits to what the grammar allows, then follows each sampled token."""

    def __init__(self, spec: OutputSpec, tokenizer: Tokenizer, resumed: Sequence[int] = ()) -> None:
        self._vocab = tokenizer.vocab_size
        self._stops = sorted(tokenizer.stop_ids)
        self._field = _field(spec)
        self.matcher = llguidance.LLMatcher(ll_tokenizer(tokenizer), grammar(spec), log_level=0)
        if resumed and not self.matcher.consume_tokens(list(resumed)):
            raise UsageError("resume_tokens", f"do not follow the output's grammar: {self.matcher.get_error()}")
        self._check()

    def _check(self) -> None:
        if self.matcher.is_error():
            raise UsageError(self._field, self.matcher.get_error())

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """``logits`` with every token the grammar forbids at this step set to -inf."""
        allowed = np.zeros(logits.shape[-1], dtype=bool)  # logits past the tokenizer's vocabulary: padding
        stopped = self.matcher.is_stopped()
        if not stopped:
            bits = np.unpackbits(np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
            n = min(self._vocab, allowed.size)
            allowed[:n] = bits[:n].astype(bool)
        if stopped or self.matcher.is_accepting():
            allowed[self._stops] = True
        return np.where(allowed, logits, -np.inf).astype(logits.dtype, copy=False)

    def accept(self, token: int) -> None:
        if token in self._stops:
            return
        self.matcher.consume_token(token)
        self._check()


class ConstrainedSampler(Sampler):
    """The shared sampler, choosing only among the tokens the output's grammar allows."""

    def __init__(self, params: SamplingParams, tokenizer: Tokenizer, resumed: Sequence[int] = ()) -> None:
        super().__init__(params)
        assert params.output is not None
        self.constraint = Constraint(params.output, tokenizer, resumed)

    def __call__(self, logits: np.ndarray) -> int:
        token = super().__call__(self.constraint.mask(logits))
        self.constraint.accept(token)
        return token


def sampler_for(params: SamplingParams, tokenizer: Tokenizer, resumed: Sequence[int] = ()) -> Sampler:
    """The sampler for one answer: constrained when its output is (tools, a JSON format)."""
    if params.output is not None and params.output.constrained:
        return ConstrainedSampler(params, tokenizer, resumed)
    return Sampler(params)
