"""The ``edgeweave`` command line.

Verbs: ``train`` (reproduce a weave-home checkpoint), ``eval`` (held-out
exact match), ``export`` (GGUF / ExecuTorch / ONNX / safetensors),
``generate`` (one prompt on one backend) and ``demo``.  Any user error is one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

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

    preset = PRESETS[args.preset]
    model, report = train(preset, steps=args.steps)
    out = save_checkpoint(model, args.out or checkpoint_dir(preset.name))
    print(
        f"{preset.name}: {report.parameters:,} parameters, {report.steps} steps, "
        f"loss {report.final_loss:.4f}, {report.seconds:.0f} s -> {out}"
    )
    return _report_eval(str(out), args.n)


def _report_eval(model: str, n: int) -> int:
    from device.backends import load_backend
    from edgeweave.chat import reply_text
    from edgeweave.data.smarthome import eval_set
    from edgeweave.models.evaluate import exact_match

    backend = load_backend("torch", model)
    report = exact_match(lambda prompt: reply_text(backend, prompt), eval_set(n))
    print(f"{model}: exact match {report.exact_match:.3f} on {report.n} held-out commands")
    for prompt, want, got in report.failures:
        print(f"  miss: {prompt!r}\n    want {want}\n    got  {got}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    return _report_eval(args.model, args.n)


def build_parser() -> argparse.ArgumentParser:
    from edgeweave.models.config import PRESETS

    parser = _Parser(prog="edgeweave", description="edge-first device/cloud ML runtime")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a weave-home model from its preset (fixed seeds)")
    p.add_argument("preset", choices=sorted(PRESETS))
    p.add_argument("--out", help="checkpoint directory (default: the committed weights directory)")
    p.add_argument("--steps", type=int, help="override the preset's step count")
    p.add_argument("--n", type=int, default=300, help="held-out commands to evaluate after training")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="exact match on held-out smart-home commands")
    p.add_argument("model", help="model name or checkpoint directory")
    p.add_argument("--n", type=int, default=300)
    p.set_defaults(func=_cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EdgeweaveError as e:
        print(f"edgeweave: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
