"""`make demo`: weave-home-device on every device backend answers smart-home commands.

Loads the model on torch, llama.cpp and ExecuTorch (exporting GGUF and .pte
once into the cache), answers three commands on each, and prints the tool
calls it would make and the measured speed.
"""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.table import Table

from edgeweave.generation.backends import BACKEND_KINDS, load_backend
from edgeweave.generation.chat import reply

COMMANDS = (
    "dim the kitchen lights to 30% and lock the front door",
    "make it 21 degrees in the office, then play jazz in the living room",
    "thanks",
)


def describe(text: str) -> str:
    """Tool calls one per line, or the conversational reply as it is."""
    try:
        calls = json.loads(text)
    except json.JSONDecodeError:
        return text
    if not isinstance(calls, list):
        return text
    lines = []
    for call in calls:
        args = ", ".join(f"{k}={v!r}" for k, v in call.items() if k != "call")
        lines.append(f"{call.get('call', '?')}({args})")
    return "\n".join(lines)


def run_demo(model: str = "weave-home-device") -> int:
    console = Console()
    table = Table(title=f"{model}: smart-home commands on every backend")
    for col in ("backend", "command", "tool calls / reply", "TTFT ms", "decode tok/s"):
        table.add_column(col)
    for kind in BACKEND_KINDS:
        start = time.perf_counter()
        with console.status(f"loading {model} on {kind} (exports once on first use)"):
            backend = load_backend(kind, model)
            reply(backend, "hello")  # warm-up: first-call allocations are not part of the timings below
        console.print(f"[green]{kind}[/] ready in {time.perf_counter() - start:.1f} s")
        for command in COMMANDS:
            result = reply(backend, command)
            s = result.stats
            table.add_row(kind, command, describe(result.text), f"{s.ttft_s * 1000:.1f}", f"{s.decode_tok_s:.0f}")
        table.add_section()
        backend.close()
    console.print(table)
    return 0
