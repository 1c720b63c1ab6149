"""The ``edgeweave`` command line.

Verbs: ``train`` (reproduce a weave-home checkpoint or weave-traffic-cnn), ``eval`` (held-out
exact match), ``export`` (GGUF / ExecuTorch / ONNX / safetensors),
``generate`` (one prompt on one backend), ``device serve``, ``coordinator
serve``, ``cloud serve``, ``tempo train-length``, ``dora plan|run``,
``circinus plan``, ``config check`` and ``demo``.  Any user error is one line on stderr
(a config file: one line per problem) and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from pydantic import ValidationError

from edgeweave.config import ConfigError
from edgeweave.errors import EdgeweaveError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _cmd_train(args: argparse.Namespace) -> int:
    from edgeweave.models.checkpoint import save_checkpoint
    from edgeweave.models.config import PRESETS
    from edgeweave.models.registry import checkpoint_dir
    from edgeweave.models.train import train
    from edgeweave.models.vision import VARIANTS

    if args.preset in VARIANTS:
        return _train_cnn(args)
    preset = PRESETS[args.preset]
    model, report = train(preset, steps=args.steps)
    out = save_checkpoint(model, args.out or checkpoint_dir(preset.name))
    print(
        f"{preset.name}: {report.parameters:,} parameters, {report.steps} steps, "
        f"loss {report.final_loss:.4f}, {report.seconds:.0f} s -> {out}"
    )
    return _report_eval(str(out), args.n, args.backend)


def _train_cnn(args: argparse.Namespace) -> int:
    from edgeweave.models.registry import checkpoint_dir
    from edgeweave.models.vision import TRAIN_STEPS, VARIANTS, save_cnn, train_cnn

    name = args.preset
    model, report = train_cnn(args.steps or TRAIN_STEPS.get(name, 400), config=VARIANTS[name])
    out = save_cnn(model, args.out or checkpoint_dir(name))
    print(
        f"{name}: {report.parameters:,} parameters, {report.steps} steps, loss {report.final_loss:.4f}, "
        f"{report.seconds:.0f} s -> {out}; accuracy {report.accuracy:.3f} on held-out frames"
    )
    return 0


def _report_eval(model: str, n: int, backend_kind: str) -> int:
    from device.backends import load_backend
    from edgeweave.models.evaluate import held_out_exact_match

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
    from device.backends import load_backend
    from edgeweave.chat import reply
    from edgeweave.sampling import SamplingParams

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


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.local:
        from apps.smarthome.demo import run_demo

        return run_demo(args.model)
    from apps.smarthome.cluster_demo import run_cluster_demo

    return run_cluster_demo(serve=args.serve)


def _cmd_config_check(args: argparse.Namespace) -> int:
    from edgeweave.config import load_config

    cfg = load_config(args.file)
    roles = [r for r in ("device", "coordinator", "cloud") if getattr(cfg, r) is not None]
    print(f"{args.file}: ok ({' and '.join(roles)})")
    return 0


def _cmd_train_length(args: argparse.Namespace) -> int:
    from cloud.tempo.length import LengthBound, split
    from edgeweave.errors import UsageError
    from edgeweave.traces import load_trace

    if not 0.0 < args.held_out < 1.0:
        raise UsageError("--held-out", f"must be between 0 and 1, got {args.held_out}")
    reqs = load_trace(args.log)
    train, held_out = split(reqs, args.held_out, args.seed)
    if len(train) < 50 or not held_out:
        raise UsageError(args.log, f"{len(reqs)} requests are too few to train on (need 50 after the held-out split)")
    model = LengthBound.fit(train, seed=args.seed)
    out = model.save(args.out)
    print(
        f"{out}: forest quantile {model.quantile}, trained on {len(train)} requests; coverage on "
        f"{len(held_out)} held-out requests: {model.coverage(held_out):.3f}"
    )
    return 0


def _serve(role: str, path: str) -> int:
    import asyncio

    from edgeweave.config import load_config
    from edgeweave.service import configure_logging

    cfg = load_config(path, role)  # type: ignore[arg-type]
    configure_logging()
    if role == "device":
        from device.daemon import serve_device

        asyncio.run(serve_device(cfg))
    elif role == "cloud":
        from cloud.server import serve_cloud

        asyncio.run(serve_cloud(cfg))
    else:
        from coordinator.main import serve_coordinator

        asyncio.run(serve_coordinator(cfg))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from edgeweave.models.config import PRESETS
    from edgeweave.models.vision import VARIANTS

    parser = _Parser(prog="edgeweave", description="edge-first device/cloud ML runtime")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a weave-home model or a traffic CNN (fixed seeds)")
    p.add_argument("preset", choices=sorted([*PRESETS, *VARIANTS]))
    p.add_argument("--out", help="checkpoint directory (default: the committed weights directory)")
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

    p = sub.add_parser("demo", help="smart-home demo: a local cluster of device daemons behind a coordinator")
    p.add_argument("--serve", action="store_true", help="start the cluster and keep it running until SIGTERM")
    p.add_argument("--local", action="store_true", help="instead: one model on every backend in this process")
    p.add_argument("--model", default="weave-home-device", help="model for --local")
    p.set_defaults(func=_cmd_demo)

    roles = (("device", "a device daemon"), ("coordinator", "the coordinator"), ("cloud", "the cloud LLM engine"))
    for role, what in roles:
        p = sub.add_parser(role, help=f"run {what}")
        verbs = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)
        v = verbs.add_parser("serve", help=f"serve {what} until SIGINT/SIGTERM")
        v.add_argument("--config", required=True, help="TOML config file")
        v.set_defaults(func=lambda a, role=role: _serve(role, a.config))

    p = sub.add_parser("tempo", help="Tempo's scheduler models")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    v = verbs.add_parser("train-length", help="train the output-length bound from logged requests")
    v.add_argument("--log", required=True, help="CSV with ContextTokens,GeneratedTokens (a request log or trace)")
    v.add_argument("--out", required=True, help="where to write the model")
    v.add_argument("--held-out", type=float, default=0.2, help="fraction kept to report coverage")
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=_cmd_train_length)

    from coordinator.circinus.cli import add_parser as add_circinus
    from coordinator.dora.cli import add_parser as add_dora

    add_dora(sub, _Parser)
    add_circinus(sub, _Parser)

    p = sub.add_parser("config", help="config files")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    v = verbs.add_parser("check", help="validate a config file, reporting every problem")
    v.add_argument("file")
    v.set_defaults(func=_cmd_config_check)
    return parser


def _one_line(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        return f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
    return " ".join(str(e).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"edgeweave: error: {e.path}: {len(e.problems)} problem(s)", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except (EdgeweaveError, ValidationError) as e:
        print(f"edgeweave: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
