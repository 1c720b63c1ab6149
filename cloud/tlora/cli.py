"""``edgeweave tlora submit|list|events|cancel`` (an ``edgeweave.cli`` entry point): tLoRA's
fine-tuning jobs (arXiv 2602.07263) on a running cloud, through its OpenAI-shaped API
(:mod:`cloud.tlora.api`) with a client API key, as ``edgeweave status`` does.

``submit`` trains on a household of the generator (``--household-seed``; the household's name is
``--household`` or the suffix) or on a JSONL file of ``{"prompt", "completion"}`` lines
(``--examples``); ``--wait`` shows a progress bar of steps and loss until the job ends (exit 0 if
it succeeded, 1 if not).  Bad input, and the server's refusals, are one line naming the flag (or the
field the server names) and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

    from edgeweave.wire.fine_tuning import FineTuningJob, FineTuningJobCreate, TrainingExample

M = TypeVar("M", bound="BaseModel")

API_KEY_ENV = "EDGEWEAVE_API_KEY"
JOBS = "/v1/fine_tuning/jobs"
POLL_S = 0.5
# the request's fields as the flags that set them (a refusal names the flag)
FLAGS = {
    "model": "--model",
    "suffix": "--suffix",
    "training_data": "--examples",
    "training_data.household": "--household",
    "training_data.seed": "--household-seed",
    "training_data.train_size": "--train-size",
    "hyperparameters.rank": "--rank",
    "hyperparameters.alpha": "--alpha",
    "hyperparameters.target_modules": "--target-modules",
    "hyperparameters.batch_size": "--batch-size",
    "hyperparameters.learning_rate": "--learning-rate",
    "hyperparameters.n_epochs": "--epochs",
    "hyperparameters.n_steps": "--steps",
    "hyperparameters.warmup_steps": "--warmup-steps",
    "hyperparameters.seed": "--seed",
    "hyperparameters.slowdown_bound": "--slowdown-bound",
    "hyperparameters": "--epochs/--steps",
    "limit": "--limit",
}


def _flag(field: str | None) -> str:
    if field is None:
        return "--url"
    if field.startswith("training_data["):
        return "--examples"
    return FLAGS.get(field, field)


def _call(args: argparse.Namespace, method: str, path: str, view: type[M], body: BaseModel | None = None) -> M:
    """One API call; any refusal or failure to reach the cloud is a :class:`UsageError`."""
    from edgeweave.errors import UsageError
    from edgeweave.wire.client import BlockingClient, NotTrusted, Refused, Unreachable, answer

    client = BlockingClient(args.url, api_key=args.api_key)
    try:
        raw = client.call(method, path, body.model_dump_json(exclude_none=True).encode() if body else b"")
        return answer(view, raw, client.url + path)
    except Refused as e:
        if e.status in (401, 403):
            raise UsageError("--api-key", f"the cloud at {client.url} refused it (HTTP {e.status})") from None
        field = e.error.param
        raise UsageError(_flag(field), e.error.message.removeprefix(f"{field}: ")) from None
    except Unreachable as e:
        raise UsageError("--url", f"cannot reach a cloud at {client.url} ({e})") from None
    except NotTrusted:
        raise UsageError("--url", f"{client.url}{path} is not an edgeweave cloud's answer") from None


def _read_examples(path: Path) -> list[TrainingExample]:
    from pydantic import ValidationError

    from edgeweave.errors import UsageError
    from edgeweave.wire.fine_tuning import TrainingExample

    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise UsageError("--examples", f"{path}: {e.strerror}") from None
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(TrainingExample.model_validate_json(line))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise UsageError("--examples", f"{path}:{i}: {where + ': ' if where else ''}{err['msg']}") from None
    if not out:
        raise UsageError("--examples", f"{path}: no examples")
    return out


def _request(args: argparse.Namespace) -> FineTuningJobCreate:
    from pydantic import ValidationError

    from edgeweave.errors import UsageError
    from edgeweave.serving.http_errors import field_path
    from edgeweave.wire.fine_tuning import FineTuningJobCreate, HouseholdData, Hyperparameters

    try:
        if args.examples is not None:
            data: Any = _read_examples(args.examples)
        else:
            data = HouseholdData(
                household=args.household or args.suffix, seed=args.household_seed, train_size=args.train_size
            )
        hp = Hyperparameters(
            rank=args.rank,
            alpha=args.alpha,
            target_modules=tuple(t.strip() for t in args.target_modules.split(",") if t.strip()),
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            n_epochs=args.epochs if args.steps is None else None,
            n_steps=args.steps,
            warmup_steps=args.warmup_steps,
            seed=args.seed,
            slowdown_bound=args.slowdown_bound,
        )
        return FineTuningJobCreate(model=args.model, suffix=args.suffix, training_data=data, hyperparameters=hp)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(x for x in err["loc"] if isinstance(x, str))
        title = {"HouseholdData": "training_data", "Hyperparameters": "hyperparameters"}.get(e.title)
        field = ".".join(filter(None, (title, field_path(loc))))
        if field == "training_data.household" and not args.household:
            field = "suffix"  # the household's name defaulted to it
        raise UsageError(_flag(field or None), err["msg"].removeprefix("Value error, ")) from None


def _wait(args: argparse.Namespace, job: FineTuningJob) -> int:
    """Poll the job and its events, a progress bar of steps and loss, until it ends."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgeweave.wire.fine_tuning import FineTuningEventList, FineTuningJob

    after: str | None = None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"))
    with Progress(*columns, TimeElapsedColumn()) as bar:
        task = bar.add_task(f"{job.fine_tuned_model} {job.status}", total=job.total_steps, loss="")
        while True:
            query = f"?limit=1000&after={after}" if after else "?limit=1000"
            events = _call(args, "GET", f"{JOBS}/{job.id}/events{query}", FineTuningEventList)
            for ev in events.data:
                if ev.type == "message":
                    bar.console.print(f"  {ev.message}")
            if events.data:
                after = events.data[-1].id
            job = _call(args, "GET", f"{JOBS}/{job.id}", FineTuningJob)
            loss = "" if job.train_loss is None else f"loss {job.train_loss:.4f}"
            bar.update(task, completed=job.step, description=f"{job.fine_tuned_model} {job.status}", loss=loss)
            if job.status in ("succeeded", "failed", "cancelled") and not events.has_more:
                break
            time.sleep(POLL_S)
    tail = f": {job.error}" if job.error else ""
    print(f"{job.id} {job.status} after {job.step} of {job.total_steps} steps{tail}")
    return 0 if job.status == "succeeded" else 1


def _cmd_submit(args: argparse.Namespace) -> int:
    from edgeweave.wire.fine_tuning import FineTuningJob

    job = _call(args, "POST", JOBS, FineTuningJob, _request(args))
    print(f"{job.id} {job.status}: {job.total_steps} steps, model {job.fine_tuned_model} once it succeeds")
    return _wait(args, job) if args.wait else 0


def _cmd_list(args: argparse.Namespace) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from edgeweave.wire.fine_tuning import FineTuningJobList

    jobs = _call(args, "GET", f"{JOBS}?limit={args.limit}", FineTuningJobList)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("job", no_wrap=True)  # whole, to copy into `events` / `cancel`
    for column in ("model", "status", "step", "loss", "group"):
        table.add_column(column, overflow="fold")
    for j in jobs.data:
        loss = "-" if j.train_loss is None else f"{j.train_loss:.4f}"
        table.add_row(j.id, j.fine_tuned_model, j.status, f"{j.step}/{j.total_steps}", loss, str(len(j.group) + 1))
    Console().print(table)
    return 0


def _cmd_events(args: argparse.Namespace) -> int:
    from edgeweave.wire.fine_tuning import FineTuningEventList

    events = _call(args, "GET", f"{JOBS}/{args.job_id}/events?limit={args.limit}", FineTuningEventList)
    for ev in events.data:
        stamp = time.strftime("%H:%M:%S", time.localtime(ev.created_at))
        loss = "" if ev.train_loss is None else f" (train_loss {ev.train_loss:.4f})"
        print(f"{stamp} {ev.level:5} {ev.message}{loss}")
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    from edgeweave.wire.fine_tuning import FineTuningJob

    job = _call(args, "POST", f"{JOBS}/{args.job_id}/cancel", FineTuningJob)
    print(f"{job.id} {job.status} at step {job.step} of {job.total_steps}")
    return 0


def _job_id(value: str) -> str:
    if not value.startswith("ftjob-") or "/" in value:
        raise argparse.ArgumentTypeError(f"{value!r} is not a fine-tuning job id (ftjob-...)")
    return value


def _connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the cloud's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument(
        "--api-key", default=os.environ.get(API_KEY_ENV, ""), help=f"a client API key (default: ${API_KEY_ENV})"
    )


def add_verbs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tlora", help="LoRA fine-tuning jobs on a cloud (tLoRA)")
    verbs = p.add_subparsers(dest="verb", required=True, parser_class=parser_class)

    s = verbs.add_parser("submit", help="submit a fine-tuning job")
    _connection(s)
    s.add_argument("--model", default="weave-home-device", help="the base, a model the cloud serves")
    s.add_argument("--suffix", required=True, help="the adapter's name: the tuned model is <model>:<suffix>")
    data = s.add_mutually_exclusive_group(required=True)
    data.add_argument("--household-seed", type=int, help="train on the generator's household of this seed")
    data.add_argument("--examples", type=Path, help='a JSONL file of {"prompt": ..., "completion": ...} lines')
    s.add_argument("--household", help="the household's name (default: the suffix)")
    s.add_argument("--train-size", type=int, default=512, help="household examples to train on")
    s.add_argument("--rank", type=int, default=8)
    s.add_argument("--alpha", type=float, default=16.0)
    s.add_argument("--target-modules", default="q_proj,k_proj,v_proj,o_proj", help="comma-separated")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--learning-rate", type=float, default=2e-3)
    length = s.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=1.0)
    length.add_argument("--steps", type=int)
    s.add_argument("--warmup-steps", type=int, default=0)
    s.add_argument("--seed", type=int, default=0, help="adapter initialisation and data order")
    s.add_argument("--slowdown-bound", type=float, default=1.5, help="how much slower than alone it may train")
    s.add_argument("--wait", action="store_true", help="show progress until the job ends")
    s.set_defaults(func=_cmd_submit)

    ls = verbs.add_parser("list", help="the cloud's fine-tuning jobs, newest first")
    _connection(ls)
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(func=_cmd_list)

    ev = verbs.add_parser("events", help="a job's events: its state changes and loss per logged step")
    _connection(ev)
    ev.add_argument("job_id", type=_job_id)
    ev.add_argument("--limit", type=int, default=1000)
    ev.set_defaults(func=_cmd_events)

    c = verbs.add_parser("cancel", help="cancel a job")
    _connection(c)
    c.add_argument("job_id", type=_job_id)
    c.set_defaults(func=_cmd_cancel)
