"""The agent-role corpus: the conversations the weave-agent models learn, from the task suite's train split.

Three roles, each named by its system turn (what the agent runtime sends, :mod:`cloud.agents`):

- **agent** (the single agent, and each executor of the multi-agent system on one step): the
  request, then tool calls in the Hermes format.  The first turn makes every call it can (reads of
  the conditions and preferences it needs, the plain actions); the tool results come back; the second
  turn acts on what they said (the condition holds, the preference's value); then ``Done.``  An
  ambiguous request gets an ``ask_user`` call and the question as its answer.
- **planner**: the request -> ``{"steps": [...]}``, its clauses in order.
- **verifier**: the request and the house's changes -> ``{"ok": true}`` or ``{"ok": false}``;
  half the examples are real runs, half are corrupted (a step left out, a wrong value, nothing done).

Conversations are built as OpenAI messages and rendered with the serving path's own conversion
(:func:`edgeweave.wire.openai_api.chat_messages`), so the models train on exactly what they serve.
Whole requests for the agent role are of at most :data:`SAS_MAX_LEVEL` calls, and no example is
over :data:`MAX_CHARS` characters (training time grows with the square of the length).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from edgeweave.data.smarthome import Example
from edgeweave.generation.tools import FunctionCall, ToolCall
from edgeweave.home.checker import describe_changes
from edgeweave.home.state import HomeState
from edgeweave.home.tasks import Step, Task, make_task
from edgeweave.home.tools import call_tool
from edgeweave.wire.openai_api import ChatMessageIn, chat_messages

AGENT_SYSTEM = "role: agent"
PLANNER_SYSTEM = "role: planner"
VERIFIER_SYSTEM = "role: verifier"
DONE = "Done."
SAS_MAX_LEVEL = 4
MAX_CHARS = 640  # longer examples are left out: training time grows with the square of their length


def planner_target(steps: tuple[Step, ...]) -> str:
    return json.dumps({"steps": [s.text for s in steps]}, separators=(",", ":"))


def verifier_prompt(request: str, before: HomeState, after: HomeState) -> str:
    return f"request: {request}\nchanges: {describe_changes(before, after)}"


def verdict(ok: bool) -> str:
    return json.dumps({"ok": ok}, separators=(",", ":"))


def _turns(steps: tuple[Step, ...]) -> list[list[tuple[str, dict[str, object]]]]:
    """The reference calls grouped into the turns an agent makes them in."""
    first, second = [], []
    for step in steps:
        calls = [(c.name, dict(c.arguments)) for c in step.calls]
        if step.feature in ("conditional", "preference"):
            first.append(calls[0])
            second += calls[1:]
        else:
            first += calls
    return [t for t in (first, second) if t]


def agent_dialogue(request: str, steps: tuple[Step, ...], initial: HomeState) -> list[ChatMessageIn]:
    """The whole reference conversation of the agent role on ``request``, ending with its answer."""
    msgs = [ChatMessageIn(role="system", content=AGENT_SYSTEM), ChatMessageIn(role="user", content=request)]
    state, n = initial, 0
    question = next((str(c.arguments["question"]) for s in steps for c in s.calls if c.name == "ask_user"), None)
    for turn in _turns(steps):
        calls = []
        for name, args in turn:
            n += 1
            calls.append(ToolCall(id=f"call_{n}", function=FunctionCall(name=name, arguments=json.dumps(args))))
        msgs.append(ChatMessageIn(role="assistant", tool_calls=calls))
        for call in calls:
            state, reply = call_tool(state, call.function.name, call.function.arguments)
            msgs.append(ChatMessageIn(role="tool", tool_call_id=call.id, content=reply))
    msgs.append(ChatMessageIn(role="assistant", content=question or DONE))
    return msgs


def _samples(conversation: list[ChatMessageIn]) -> Iterator[Example]:
    """One example per assistant turn: the conversation so far as context, that turn as the target."""
    for i, m in enumerate(conversation):
        if m.role == "assistant":
            context = tuple((x.role, x.content) for x in chat_messages(conversation[:i]))
            yield Example(prompt="", target=m.to_message().content, context=context)


def _corrupted(rng: random.Random, task: Task) -> HomeState:
    """The house after a run that went wrong: a step left out, or one call's value changed."""
    acting = [
        i for i, s in enumerate(task.steps) if any(c.name not in ("home_read", "preferences_get") for c in s.calls)
    ]
    if not acting:
        return task.initial
    skip = rng.choice(acting) if rng.random() < 0.6 or len(task.steps) == 1 else None
    state = task.initial
    for i, step in enumerate(task.steps):
        if i == skip:
            continue
        for call in step.calls:
            args = dict(call.arguments)
            if skip is None and i == acting[0]:
                args = {
                    k: (v + 10 if isinstance(v, int) and v <= 18 else v - 10 if isinstance(v, int) else v)
                    for k, v in args.items()
                }
            try:
                state, _ = call_tool(state, call.name, args)
            except ValueError:
                state, _ = call_tool(state, call.name, dict(call.arguments))
    return state


def role_examples(seed: int) -> Iterator[Example]:
    """Endless training examples of the three roles, from train-split tasks only, each at most
    :data:`MAX_CHARS` long."""
    for ex in _role_examples(seed):
        if sum(len(content) for _, content in ex.context) + len(ex.target) <= MAX_CHARS:
            yield ex


def _role_examples(seed: int) -> Iterator[Example]:
    rng = random.Random(seed)
    i = 0
    while True:
        i += 1
        r = rng.random()
        # whole requests up to SAS_MAX_LEVEL calls (longer ones cost training time quadratically; the
        # planner splits them for the executors, and a single agent must generalise to them)
        task = make_task(10_000_000 + seed * 1_000_003 + i, rng.randint(1, SAS_MAX_LEVEL if r < 0.25 else 8))
        if task.split != "train":
            continue
        if r < 0.25:
            yield from _samples(agent_dialogue(task.request, task.steps, task.initial))
        elif r < 0.45:
            step = rng.choice(task.steps)
            yield from _samples(agent_dialogue(step.text, (step,), task.initial))
        elif r < 0.8:
            context = (("system", PLANNER_SYSTEM), ("user", task.request))
            yield Example(prompt="", target=planner_target(task.steps), context=context)
        else:
            ok = rng.random() < 0.5
            after = task.goal if ok else _corrupted(rng, task)
            ok = after.flat() == task.goal.flat()
            prompt = verifier_prompt(task.request, task.initial, after)
            context = (("system", VERIFIER_SYSTEM), ("user", prompt))
            yield Example(prompt="", target=verdict(ok), context=context)
