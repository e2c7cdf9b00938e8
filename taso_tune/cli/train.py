"""``taso-tune train`` and ``taso-tune schedule``: one training run, and a schedule's lr as a table."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import fields
from typing import Any

import yaml

from taso_tune.cli import epoch_bar
from taso_tune.cli.help_format import HelpFormatter
from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import check_writable, is_uri
from taso_tune.schedules.maths import (
    SCHEDULE_GRANULARITIES,
    SCHEDULES,
    check_taso_params,
    schedule_parameters,
    schedule_table,
)
from taso_tune.spaces import SpaceLoader
from taso_tune.training.data.sets import DATASETS
from taso_tune.training.models import MODELS, count_parameters
from taso_tune.training.run import TrainConfig


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, values read as YAML scalars (``0.9``, ``1e-4``, ``true``, ``[0.5, 0.75]``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", item, "must look like KEY=VALUE")
        try:
            # read as space files are: "1e-3" (no dot, a string in YAML 1.1) is a number
            out[key.strip()] = yaml.load(value, Loader=SpaceLoader)  # noqa: S506 (a SafeLoader)
        except (yaml.YAMLError, ConfigError):
            raise ConfigError("--set", item, "VALUE is not a YAML scalar or list") from None
    return out


def _file_part(name: str) -> str:
    """A model or data set name as one folder-name part (``torchvision/resnet18``, ``pkg.mod:f``)."""
    return name.replace("/", "-").replace(":", "-")


def _default(name: str) -> Any:
    """A TrainConfig field's default: the one place the training defaults are written."""
    return {f.name: f.default for f in fields(TrainConfig)}[name]


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model with one optimizer and print a line per epoch",
        description="Train one model/dataset/optimizer and write DIR/metrics.csv and DIR/config.yaml.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--model",
        default=_default("model"),
        help=" | ".join(
            [*sorted(MODELS), "torchvision/NAME", "timm/NAME", "package.module:callable"]
        ),
    )
    p.add_argument(
        "--dataset",
        default=_default("dataset"),
        help=" | ".join([*sorted(DATASETS), "package.module:callable"]),
    )
    p.add_argument(
        "--optimizer",
        default=_default("optimizer"),
        help="an optimizer recipe (see `taso-tune optimizers`)",
    )
    p.add_argument("--epochs", type=int, default=_default("epochs"))
    p.add_argument("--lr", type=float, help="initial learning rate (default: the recipe's)")
    p.add_argument("--alpha", type=float, help="TASO alpha (default: the recipe's)")
    p.add_argument("--beta", type=float, help="TASO beta (default: the recipe's)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="any other optimizer field, e.g. --set momentum=0",
    )
    p.add_argument("--seed", type=int, default=_default("seed"))
    p.add_argument("--batch-size", type=int, default=_default("batch_size"))
    p.add_argument(
        "--data-root", help="folder holding the data set files (not needed for digits/synthetic)"
    )
    p.add_argument(
        "--download", action="store_true", help="download the data set into --data-root if missing"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=_default("val_fraction"),
        help="share of the training set held out for validation",
    )
    p.add_argument("--train-limit", type=int, help="use only the first N training images")
    p.add_argument(
        "--image-size",
        type=int,
        help="imagefolder: resize every image to this side (default: the first image's size)",
    )
    p.add_argument(
        "--data-memory-gb",
        type=float,
        help="imagefolder: refuse a folder whose images need more memory than this "
        "(default: a quarter of the machine's memory)",
    )
    p.add_argument("--device", default=_default("device"), choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--schedule-granularity",
        choices=SCHEDULE_GRANULARITIES,
        default=_default("schedule_granularity"),
        help="how often the lr updates: every epoch, every optimizer step, or auto: the recipe's own "
        "(TASO and constant-lr recipes per epoch, the annealing baselines per step)",
    )
    p.add_argument(
        "--schedule-per-step",
        dest="schedule_granularity",
        action="store_const",
        const="step",
        default=argparse.SUPPRESS,
        help="the same as --schedule-granularity step",
    )
    p.add_argument("--out", help="output folder (default: runs/train-MODEL-DATASET-OPTIMIZER-TIME)")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from taso_tune.training.folder import train_run_to_folder
    from taso_tune.training.run import Run

    hparams = parse_assignments(args.set)
    for name in ("lr", "alpha", "beta"):
        if getattr(args, name) is not None:
            hparams[name] = getattr(args, name)
    own = {f.name for f in fields(TrainConfig)} - {"hparams"}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in own}, hparams=hparams)
    out = args.out or os.path.join(
        "runs",
        f"train-{_file_part(config.model)}-{_file_part(config.dataset)}-{config.optimizer}-"
        f"{time.strftime('%Y%m%d-%H%M%S')}",
    )
    if is_uri(out):
        raise ConfigError("--out", out, "must be a local folder (train writes its files locally)")
    check_writable(out, "--out", "folder")
    run = Run(
        config
    )  # loads data and builds everything: bad input fails before any file is written
    sizes = run.data.sizes()
    print(
        f"training {config.model} ({count_parameters(run.module):,} parameters) on {config.dataset} "
        f"({sizes['train']} train / {sizes['val']} val / "
        f"{sizes['test']} test images) with {config.optimizer} for {config.epochs} epochs on {run.device}",
        flush=True,
    )
    for note in run.model_notes:
        print(f"{config.model}: {note}", flush=True)
    epoch_bar.attach(run, sys.stdout)  # a bar for long epochs on a terminal; plain lines otherwise
    start = time.perf_counter()
    records = train_run_to_folder(run, out, _print_epoch)
    last = records[-1]
    print(
        f"{run.status}: test_acc {last['test_acc']:.2%} after {last['epoch']} epochs in "
        f"{time.perf_counter() - start:.1f}s; results in {out}",
        flush=True,
    )
    return 0


def _print_epoch(run: Any, record: dict[str, Any]) -> None:
    val = f"val_acc {record['val_acc']:.2%}  " if "val_acc" in record else ""
    print(
        f"epoch {record['epoch']:>3}/{run.config.epochs}  lr {record['lr']:.5g}  train_loss {record['train_loss']:.4f}  "
        f"{val}test_acc {record['test_acc']:.2%}  {record['epoch_seconds']:.2f}s",
        flush=True,
    )


def _schedule_parameters_epilog() -> str:
    """The parameters of every schedule with their defaults, read from the schedule functions."""
    lines = ["schedule parameters (--set KEY=VALUE) and their defaults:"]
    for name in sorted(SCHEDULES):
        params = ", ".join(f"{k}={v}" for k, v in schedule_parameters(name).items()) or "none"
        lines.append(f"  {name:<9} {params}")
    lines.append("taso's lr_final None is lr_initial / 20, the paper's recommendation.")
    return "\n".join(lines)


def add_schedule_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedule",
        help="print a learning-rate schedule as a table, per epoch or per step",
        description="Print the lr of every update of a plan: once per epoch, or once per optimizer step\n"
        "with --steps-per-epoch. TASO is Eq. (1) of the paper,\n"
        "    lr(k) = lr_initial / (1 + exp(alpha (k/k_t - beta))) + lr_final;\n"
        "the annealing schedules run from lr_initial at the first update to lr_final at the last.",
        epilog=_schedule_parameters_epilog(),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "name",
        nargs="?",
        default="taso",
        metavar="NAME",
        help=f"the schedule: {', '.join(sorted(SCHEDULES))}",
    )
    p.add_argument("--lr-initial", type=float, default=0.05, help="the initial learning rate")
    p.add_argument("--epochs", type=int, default=100, help="planned epochs")
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        metavar="N",
        help="update every optimizer step, N steps an epoch (without it: once per epoch)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a parameter of the schedule (listed below), e.g. --set warmup=0.1",
    )
    p.add_argument("--lr-final", type=float, help="the same as --set lr_final=VALUE")
    p.add_argument("--alpha", type=float, help="TASO's alpha, the same as --set alpha=VALUE")
    p.add_argument("--beta", type=float, help="TASO's beta, the same as --set beta=VALUE")
    p.add_argument(
        "--csv", action="store_true", help="comma-separated: a header, then epoch,step,lr rows"
    )
    p.set_defaults(handler=run_schedule)


def run_schedule(args: argparse.Namespace) -> int:
    params = parse_assignments(args.set)
    for name in ("lr_final", "alpha", "beta"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.name == "taso":  # warn about the paper's heuristic, as training would
        defaults = schedule_parameters("taso")
        check_taso_params(
            params.get("alpha", defaults["alpha"]), params.get("beta", defaults["beta"])
        )
    rows = schedule_table(
        args.name,
        args.epochs,
        lr_initial=args.lr_initial,
        steps_per_epoch=args.steps_per_epoch,
        **params,
    )
    try:
        _print_schedule(rows, as_csv=args.csv, per_step=args.steps_per_epoch is not None)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader stopped early (`| head`): end quietly, and point stdout at devnull so the
        # interpreter's own flush at exit does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def _print_schedule(
    rows: list[tuple[int, int | None, float]], *, as_csv: bool, per_step: bool
) -> None:
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["epoch", "step", "lr"])
        writer.writerows((epoch, "" if step is None else step, lr) for epoch, step, lr in rows)
        return
    if per_step:
        print(f"{'epoch':>5}  {'step':>6}  {'lr':>12}")
        for epoch, step, lr in rows:
            print(f"{epoch:>5}  {step:>6}  {lr:>12.6g}")
    else:
        print(f"{'epoch':>5}  {'lr':>12}")
        for epoch, _, lr in rows:
            print(f"{epoch:>5}  {lr:>12.6g}")
