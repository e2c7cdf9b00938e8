"""``taso-tune train`` and ``taso-tune schedule``: one training run, and the TASO curve as a table."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import fields
from typing import Any

import yaml

from taso_tune.data import DATASETS
from taso_tune.errors import ConfigError
from taso_tune.models import MODELS
from taso_tune.schedules import check_taso_params, taso_lr
from taso_tune.spaces import SpaceLoader
from taso_tune.train import TrainConfig


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


def _default(name: str) -> Any:
    """A TrainConfig field's default: the one place the training defaults are written."""
    return {f.name: f.default for f in fields(TrainConfig)}[name]


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model with one optimizer and print a line per epoch",
        description="Train one model/dataset/optimizer and write DIR/metrics.csv and DIR/config.yaml.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default=_default("model"), help=" | ".join(sorted(MODELS)))
    p.add_argument("--dataset", default=_default("dataset"), help=" | ".join(sorted(DATASETS)))
    p.add_argument("--optimizer", default=_default("optimizer"), help="an optimizer recipe (see `taso-tune optimizers`)")
    p.add_argument("--epochs", type=int, default=_default("epochs"))
    p.add_argument("--lr", type=float, help="initial learning rate (default: the recipe's)")
    p.add_argument("--alpha", type=float, help="TASO alpha (default: the recipe's)")
    p.add_argument("--beta", type=float, help="TASO beta (default: the recipe's)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other optimizer field, e.g. --set momentum=0")
    p.add_argument("--seed", type=int, default=_default("seed"))
    p.add_argument("--batch-size", type=int, default=_default("batch_size"))
    p.add_argument("--data-root", help="folder holding the data set files (not needed for digits/synthetic)")
    p.add_argument("--download", action="store_true", help="download the data set into --data-root if missing")
    p.add_argument("--val-fraction", type=float, default=_default("val_fraction"),
                   help="share of the training set held out for validation")  # fmt: skip
    p.add_argument("--train-limit", type=int, help="use only the first N training images")
    p.add_argument("--device", default=_default("device"), choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--schedule-per-step", action="store_true", help="update the lr every step instead of every epoch")
    p.add_argument("--out", help="output folder (default: runs/train-MODEL-DATASET-OPTIMIZER-TIME)")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from taso_tune.train import Run, train_run_to_folder

    hparams = parse_assignments(args.set)
    for name in ("lr", "alpha", "beta"):
        if getattr(args, name) is not None:
            hparams[name] = getattr(args, name)
    own = {f.name for f in fields(TrainConfig)} - {"hparams"}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in own}, hparams=hparams)
    out = args.out or os.path.join(
        "runs", f"train-{config.model}-{config.dataset}-{config.optimizer}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    run = Run(config)  # loads data and builds everything: bad input fails before any file is written
    sizes = run.data.sizes()
    print(
        f"training {config.model} on {config.dataset} ({sizes['train']} train / {sizes['val']} val / "
        f"{sizes['test']} test images) with {config.optimizer} for {config.epochs} epochs on {run.device}",
        flush=True,
    )
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


def add_schedule_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedule",
        help="print the TASO learning-rate curve as a table",
        description="Print eps(k) = lr_initial / (1 + exp(alpha (k/k_t - beta))) + lr_final for k = 1..k_t.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--lr-initial", type=float, default=0.05)
    p.add_argument("--lr-final", type=float, help="default: lr_initial / 20 (the paper's recommendation)")
    p.add_argument("--alpha", type=float, default=25.0)
    p.add_argument("--beta", type=float, default=0.7)
    p.add_argument("--epochs", type=int, default=100)
    p.set_defaults(handler=run_schedule)


def run_schedule(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise ConfigError("epochs", args.epochs, "must be an integer >= 1")
    check_taso_params(args.alpha, args.beta)
    lrs = [
        taso_lr(k, args.epochs, lr_initial=args.lr_initial, lr_final=args.lr_final, alpha=args.alpha, beta=args.beta)
        for k in range(1, args.epochs + 1)
    ]
    print(f"{'epoch':>5}  {'lr':>12}")
    for k, lr in enumerate(lrs, start=1):
        print(f"{k:>5}  {lr:>12.6g}")
    sys.stdout.flush()
    return 0
