"""OpenAI function calling and structured output through the coordinator, on real processes.

A torch device daemon and a cloud service both serve the agent model (``conftest.py``); the official ``openai``
client sends ``tools`` / ``tool_choice`` / ``tool`` messages / ``response_format``, streaming and
not, and gets OpenAI's shapes back; an answer moved mid-stream from the device to the cloud
continues the same constrained call (the cloud's grammar replays the resumed tokens); the
``openai-agents`` SDK runs a real agent with a function tool through the coordinator; bad input is a
400 naming the field."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import openai
import pytest

from edgeweave.cluster.local_cluster import LocalCluster
from edgeweave.home.tools import TOOLS, tool_definitions

MODEL = "weave-agent-device"
PIN = {"X-Edgeweave-Endpoint": "device:hub-1"}
TOOL_LIST = [t.model_dump(exclude_none=True) for t in tool_definitions()]
AGENT = [{"role": "system", "content": "role: agent"}]
VERDICT = {
    "type": "json_schema",
    "json_schema": {
        "name": "verdict",
        "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
    },
}


def client(cluster: LocalCluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0)


def ask(cluster: LocalCluster, text: str, **kw: object) -> object:
    return client(cluster).chat.completions.create(
        model=MODEL,
        messages=[*AGENT, {"role": "user", "content": text}],
        temperature=0,
        max_tokens=300,
        **kw,  # type: ignore[arg-type]
    )


def valid(name: str, arguments: str) -> dict[str, object]:
    args = json.loads(arguments)
    TOOLS[name].args.model_validate(args)
    return args


def test_tool_calls_streaming_or_not(cluster: LocalCluster) -> None:
    full = ask(cluster, "dim the kitchen lights to 30%", tools=TOOL_LIST, extra_headers=PIN)
    choice = full.choices[0]  # type: ignore[attr-defined]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call-")
    assert [c.function.name for c in choice.message.tool_calls] == ["lights_dim"]  # the model's own choice
    valid(call.function.name, call.function.arguments)
    parts: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in ask(cluster, "dim the kitchen lights to 30%", tools=TOOL_LIST, stream=True, extra_headers=PIN):  # type: ignore[attr-defined]
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for d in c.delta.tool_calls or []:
                part = parts.setdefault(d.index, {"name": "", "arguments": ""})
                part["name"] += d.function.name or ""
                part["arguments"] += d.function.arguments or ""
    assert finish == "tool_calls"
    assert [(p["name"], json.loads(p["arguments"])) for p in parts.values()] == [
        (c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls
    ]


def test_tool_results_go_back_and_the_agent_answers(cluster: LocalCluster) -> None:
    first = ask(cluster, "lock the back door", tools=TOOL_LIST).choices[0].message  # type: ignore[attr-defined]
    assert first.tool_calls
    msgs = [
        *AGENT,
        {"role": "user", "content": "lock the back door"},
        first.model_dump(exclude_none=True),
        *({"role": "tool", "tool_call_id": c.id, "content": '{"ok":true}'} for c in first.tool_calls),
    ]
    done = client(cluster).chat.completions.create(model=MODEL, messages=msgs, tools=TOOL_LIST, temperature=0)  # type: ignore[arg-type]
    # after its tool results the agent answers in words (what it says is the model's)
    assert done.choices[0].finish_reason == "stop" and done.choices[0].message.tool_calls is None
    assert done.choices[0].message.content


def test_tool_choice_none_named_and_response_format(cluster: LocalCluster) -> None:
    named = ask(
        cluster,
        "lock the back door",
        tools=TOOL_LIST,
        tool_choice={"type": "function", "function": {"name": "door_lock"}},
    )
    calls = named.choices[0].message.tool_calls  # type: ignore[attr-defined]
    assert calls and all(c.function.name == "door_lock" and valid("door_lock", c.function.arguments) for c in calls)
    none = ask(cluster, "hello", tools=TOOL_LIST, tool_choice="none").choices[0]  # type: ignore[attr-defined]
    assert none.message.tool_calls is None and none.message.content
    verify = [{"role": "system", "content": "role: verifier"},
              {"role": "user", "content": "request: lock the back door\nchanges: doors.back.locked=true"}]  # fmt: skip
    for fmt in (VERDICT, {"type": "json_object"}):
        verdict = client(cluster).chat.completions.create(
            model=MODEL,
            messages=verify,
            response_format=fmt,
            temperature=0,
            max_tokens=60,  # type: ignore[arg-type]
        )
        assert set(json.loads(verdict.choices[0].message.content)) <= {"ok"}  # type: ignore[arg-type]


def test_a_constrained_answer_moved_mid_stream_to_the_cloud(cluster: LocalCluster) -> None:
    text = "set the living room thermostat to 22 degrees and close the kitchen blinds"
    alone = ask(cluster, text, tools=TOOL_LIST, extra_headers=PIN).choices[0].message.tool_calls  # type: ignore[attr-defined]
    ends, calls = set(), {}
    moved = {**PIN, "X-Edgeweave-Migrate-After": "20"}
    for chunk in ask(cluster, text, tools=TOOL_LIST, stream=True, extra_headers=moved):  # type: ignore[attr-defined]
        ends.add(chunk.system_fingerprint)
        for c in chunk.choices:
            for d in c.delta.tool_calls or []:
                calls[d.index] = (d.function.name, json.loads(d.function.arguments))
    assert {"device:hub-1", "cloud:cloud-small"} <= ends
    assert list(calls.values()) == [(c.function.name, json.loads(c.function.arguments)) for c in alone]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOL_LIST[:1], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"messages": [{"role": "tool", "content": "{}"}]}, "messages"),
    ],
)
def test_bad_tool_requests_are_400s_naming_the_field(cluster: LocalCluster, body: dict, param: str) -> None:  # type: ignore[type-arg]
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(openai.BadRequestError) as err:
        client(cluster).chat.completions.create(**payload)  # type: ignore[arg-type]
    assert str(err.value.body.get("param", "")).startswith(param), err.value.body  # type: ignore[union-attr]


def test_the_openai_agents_sdk_runs_a_tool_through_the_coordinator(cluster: LocalCluster) -> None:
    from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    locked: list[str] = []

    @function_tool
    def door_lock(door: Literal["front", "back", "garage", "patio"]) -> str:
        """Lock a door."""
        locked.append(door)
        return '{"ok":true}'

    async def run() -> str:
        api = openai.AsyncOpenAI(base_url=cluster.url + "/v1", api_key=cluster.api_key, max_retries=0)
        agent = Agent(
            name="home",
            instructions="role: agent",
            tools=[door_lock],
            model=OpenAIChatCompletionsModel(model=MODEL, openai_client=api),
        )
        result = await Runner.run(agent, "lock the back door", run_config=RunConfig(tracing_disabled=True))
        return str(result.final_output)

    assert asyncio.run(run())  # the agent's final answer, after its tool ran
    assert locked and set(locked) <= {"front", "back", "garage", "patio"}
