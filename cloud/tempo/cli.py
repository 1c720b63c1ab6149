"""``edgeweave tempo train-length``: train Tempo's output-length bound from logged requests (an
``edgeweave.cli`` entry point)."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_train_length(args: argparse.Namespace) -> int:
    from cloud.tempo.length import LengthBound, split
    from edgeweave.data.traces import load_trace
    from edgeweave.errors import UsageError

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


def add_verbs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tempo", help="Tempo's scheduler models")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=parser_class)
    v = verbs.add_parser("train-length", help="train the output-length bound from logged requests")
    v.add_argument("--log", required=True, help="CSV with TIMESTAMP,ContextTokens,GeneratedTokens (a log or trace)")
    v.add_argument("--out", required=True, help="where to write the model")
    v.add_argument("--held-out", type=float, default=0.2, help="fraction kept to report coverage")
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=_cmd_train_length)
