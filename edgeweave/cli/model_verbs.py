"""The core's verbs: ``train`` (reproduce a weave-home checkpoint or weave-traffic-cnn), ``eval``
(held-out exact match), ``export`` (GGUF / ExecuTorch / ONNX / safetensors), ``generate`` (one
prompt on one backend) and ``config check``; and :func:`add_serve_verb`, with which each side adds
its ``<role> serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any


def _cmd_train(args: argparse.Namespace) -> int:
    from edgeweave.errors import UsageError
    from edgeweave.models.checkpoint import save_checkpoint
    from edgeweave.models.config import PRESETS
    from edgeweave.models.train import train
    from edgeweave.models.vision import VARIANTS

    if args.preset not in PRESETS and args.preset not in VARIANTS:
        known = ", ".join(sorted([*PRESETS, *VARIANTS]))
        raise UsageError("preset", f"unknown model {args.preset!r} (choose from {known})")
    if args.preset in VARIANTS:
        return _train_cnn(args)
    preset = PRESETS[args.preset]
    roles = preset.corpus == "agent-roles"
    if roles:
        from edgeweave.home.role_corpus import role_examples
    model, report = train(preset, steps=args.steps, corpus=role_examples(preset.seed) if roles else None)
    out = save_checkpoint(model, args.out)
    print(
        f"{preset.name}: {report.parameters:,} parameters, {report.steps} steps, "
        f"loss {report.final_loss:.4f}, {report.seconds:.0f} s -> {out}"
    )
    if roles:  # its measure is the agents' task accuracy, not command exact match
        print("evaluate it on the household tasks: python -m benchmarks.agents --quick")
        return 0
    return _report_eval(str(out), args.n, args.backend)


def _train_cnn(args: argparse.Namespace) -> int:
    from edgeweave.models.vision import TRAIN_STEPS, VARIANTS, save_cnn, train_cnn

    name = args.preset
    model, report = train_cnn(args.steps or TRAIN_STEPS.get(name, 400), config=VARIANTS[name])
    out = save_cnn(model, args.out)
    print(
        f"{name}: {report.parameters:,} parameters, {report.steps} steps, loss {report.final_loss:.4f}, "
        f"{report.seconds:.0f} s -> {out}; accuracy {report.accuracy:.3f} on held-out frames"
    )
    return 0


def _report_eval(model: str, n: int, backend_kind: str) -> int:
    from edgeweave.generation.backends import load_backend
    from edgeweave.generation.evaluate import held_out_exact_match

    backend = load_backend(backend_kind, model)
    report = held_out_exact_match(backend, n)
    print(f"{model}: exact match {report.exact_match:.3f} on {report.n} held-out commands ({backend.name})")
    for prompt, want, got in report.failures:
        print(f"  miss: {prompt!r}\n    want {want}\n    got  {got}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    return _report_eval(args.model, args.n, args.backend)


def _cmd_export(args: argparse.Namespace) -> int:
    from edgeweave.export import export_model
    from edgeweave.models.registry import resolve_checkpoint

    out = export_model(resolve_checkpoint(args.model), args.to, args.out, dtype=args.dtype)
    print(f"wrote {out}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from edgeweave.generation.backends import load_backend
    from edgeweave.generation.chat import reply
    from edgeweave.generation.sampling import SamplingParams

    backend = load_backend(args.backend, args.model)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed)
    result = reply(backend, args.prompt, params)
    print(result.text)
    s = result.stats
    print(
        f"[{backend.name}] {s.generated_tokens} tokens, TTFT {s.ttft_s * 1000:.1f} ms, "
        f"decode {s.decode_tok_s:.0f} tok/s",
        file=sys.stderr,
    )
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    from edgeweave.config import load_config

    cfg = load_config(args.file)
    roles = [r for r in ("device", "coordinator", "cloud") if getattr(cfg, r) is not None]
    print(f"{args.file}: ok ({' and '.join(roles)})")
    return 0


def _serve(role: str, path: str, run: Callable[[Any], Awaitable[None]]) -> int:
    import asyncio

    from edgeweave.config import load_config
    from edgeweave.errors import UsageError
    from edgeweave.serving.service import ListenError, configure_logging

    cfg = load_config(path, role)  # type: ignore[arg-type]
    configure_logging()
    try:
        asyncio.run(run(cfg))
    except ListenError as e:
        raise UsageError(f"{role}.{e.field}", e.problem) from None
    return 0


def add_serve_verb(
    sub: Any,
    parser_class: type[argparse.ArgumentParser],
    role: str,
    what: str,
    server: Callable[[], Callable[[Any], Awaitable[None]]],
) -> None:
    """``edgeweave ROLE serve --config FILE``; ``server()`` imports and returns the coroutine
    function that serves a loaded config (imported only when the verb runs)."""
    p = sub.add_parser(role, help=f"run {what}")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=parser_class)
    v = verbs.add_parser("serve", help=f"serve {what} until SIGINT/SIGTERM")
    v.add_argument("--config", required=True, help="TOML config file (docs/config.md)")
    v.set_defaults(func=lambda a: _serve(role, a.config, server()))


def add_verbs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="train a weave-home model or a traffic CNN (fixed seeds)")
    p.add_argument("preset", help="a weave-home preset, weave-traffic-cnn or a traffic-det/cls variant")
    p.add_argument("--out", required=True, help="checkpoint directory to write (never the committed weights)")
    p.add_argument("--steps", type=int, help="override the preset's step count")
    p.add_argument("--n", type=int, default=300, help="held-out commands to evaluate after training")
    p.add_argument("--backend", default="torch", help="backend for the evaluation: torch | llamacpp | executorch")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="exact match on held-out smart-home commands")
    p.add_argument("model", help="model name or checkpoint directory")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--backend", default="torch", help="torch | llamacpp | executorch (greedy output is identical)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("export", help="export a model to another runtime's format")
    p.add_argument("--to", required=True, help="gguf | pte | onnx | safetensors")
    p.add_argument("--dtype", default="f32", help="weight precision for gguf/safetensors: f32 | f16")
    p.add_argument("model", help="model name or checkpoint directory (config.json + safetensors)")
    p.add_argument("out", help="output file (a directory for safetensors)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("generate", help="answer one chat prompt on one backend")
    p.add_argument("prompt")
    p.add_argument("--model", default="weave-home-device")
    p.add_argument("--backend", default="torch", help="torch | llamacpp | executorch")
    p.add_argument("--max-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("config", help="config files")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=parser_class)
    v = verbs.add_parser("check", help="validate a config file, reporting every problem")
    v.add_argument("file")
    v.set_defaults(func=_cmd_config_check)
