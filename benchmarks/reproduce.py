"""Run the paper's whole protocol on LeNet5 with taso-tune commands (``make reproduce [DATA=...]``).

Every step is the library call behind a ``taso-tune`` command; the command is printed and kept in
docs/reproduction.md with its wall time:

1. optimal scenario: the grids of Tables I-IV (5 seeds), then Table V (alpha x beta) with the winning
   constant learning rate of Table IV; the chosen defaults; the final comparison with them (Table VI)
   and at a quarter of the epochs (Table VII);
2. suboptimal scenario: the paper's published defaults applied unchanged (Tables VIII-X);
3. beyond the paper: TASO against cosine, linear-to-zero, step and WSD at an equal tuning budget; and
   selection on the test set (the paper's way) against ours on validation;
4. early stopping: the grids under ASHA and under budget-aware successive halving.

The tables (mean (± std) over n seeds, next to the paper's numbers) are written into
docs/reproduction.md between markers; the reports go to dashboards/reproduction/.

    python benchmarks/reproduce.py [--data digits|fashion_mnist] [--epochs N] [--storage DIR]

``--data digits`` (the default) runs it on the bundled digits, 15 epochs, all the paper's grids.
``--data fashion_mnist`` runs it on Fashion-MNIST (Debian's package dataset-fashion-mnist; a
stratified 8,000 training images, 2,000 of them for validation, the full 10,000 test images), 8
epochs, the grids reduced to two learning rates each (Table V: alpha {10, 50} x beta {0.5, 0.7});
without step 4 (the early-stopping study of Fashion-MNIST is ``make bench-early-stopping
DATA=fashion_mnist``), with a transfer step instead: the defaults tuned on digits
(``search_spaces/defaults/digits.yaml``) applied unchanged, against the ones tuned on Fashion-MNIST.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import write_between_markers  # noqa: E402
from reproduction_fashion import render_fashion_tables  # noqa: E402
from reproduction_tables import render_tables  # noqa: E402

from taso_tune.cli import build_parser  # noqa: E402
from taso_tune.cli.apply import apply_spec  # noqa: E402
from taso_tune.cli.sweep import override_values, resolve_spec  # noqa: E402
from taso_tune.core.storage import write_text_atomic  # noqa: E402
from taso_tune.results.experiment import load_experiment  # noqa: E402
from taso_tune.results.export import FORMAT, export_defaults, load_defaults  # noqa: E402
from taso_tune.results.report import write_report  # noqa: E402
from taso_tune.tuning import resume_sweep, run_sweep  # noqa: E402

DIGITS_DEFAULTS = "search_spaces/defaults/digits.yaml"


@dataclass(frozen=True)
class Protocol:
    """What differs between the data sets the study runs on."""

    dataset: str
    grids: str
    beyond: str
    train: dict  # the train section of the spaces the study writes (Table V)
    epochs: int
    table5_alpha: tuple[float, ...]
    table5_beta: tuple[float, ...]
    marker: str  # docs/reproduction.md markers
    prefix: str  # of the report pages
    early_stopping: bool  # step 4: the grids under ASHA and budget-sh
    transfer: str | None  # defaults tuned elsewhere, applied unchanged

    def pair(self, seeds: int = 5) -> list[str]:
        """The ``taso-tune apply`` flags that train on this study's data, ``seeds`` seeds."""
        flags = ["--model", "lenet5", "--dataset", self.dataset, "--seeds", str(seeds)]
        for key, flag in (
            ("data_root", "--data-root"),
            ("train_limit", "--train-limit"),
            ("val_fraction", "--val-fraction"),
        ):
            if key in self.train:
                flags += [flag, str(self.train[key])]
        return flags


FASHION_TRAIN = {
    "model": "lenet5",
    "dataset": "fashion_mnist",
    "data_root": "/usr/share/datasets/fashion-mnist",
    "train_limit": 8000,
    "val_fraction": 0.25,
    "batch_size": 64,
}
PROTOCOLS = {
    "digits": Protocol(
        "digits",
        "search_spaces/reproduction/digits_grids.yaml",
        "search_spaces/beyond.yaml",
        {"model": "lenet5", "dataset": "digits", "batch_size": 64},
        15,
        (10, 25, 50),
        (0.3, 0.5, 0.7),
        "reproduction",
        "",
        True,
        None,
    ),
    "fashion_mnist": Protocol(
        "fashion_mnist",
        "search_spaces/reproduction/fashion_grids.yaml",
        "search_spaces/reproduction/fashion_beyond.yaml",
        FASHION_TRAIN,
        8,
        (10, 50),
        (0.5, 0.7),
        "reproduction-fashion",
        "fashion-",
        False,
        DIGITS_DEFAULTS,
    ),
}


class Study:
    """Runs the study's steps through the library (the same calls as the ``taso-tune`` commands),
    remembering each sweep with its equivalent command and wall time."""

    def __init__(self, storage: Path, reports: Path, prefix: str = "") -> None:
        self.storage, self.reports, self.prefix = storage, reports, prefix
        # the sweeps' commands and wall times, kept across reruns (a rerun only resumes them)
        self.log_file = storage / "commands.json"
        self.log: list[tuple[str, float]] = (
            json.loads(self.log_file.read_text()) if self.log_file.exists() else []
        )

    def sweep(self, name: str, *args: str, command: str = "sweep") -> Path:
        """``taso-tune COMMAND ARGS --name NAME --storage STORAGE`` (``sweep`` or ``apply``; ``resume``
        on a rerun), then its report."""
        experiment = self.storage / name
        start = time.perf_counter()
        if experiment.exists():  # a rerun keeps finished parts and continues interrupted ones
            print(f"\n$ taso-tune resume {experiment}", flush=True)
            resume_sweep(str(experiment))
        else:
            shown = shlex.join(
                ["taso-tune", command, *args, "--name", name, "--storage", str(self.storage)]
            )
            print(f"\n$ {shown}", flush=True)
            parsed = build_parser().parse_args(
                [command, *args, "--name", name, "--storage", str(self.storage)]
            )
            if command == "apply":
                spec = apply_spec(parsed)
            else:
                spec = resolve_spec(
                    parsed.space,
                    **override_values(parsed),
                    scheduler=parsed.scheduler,
                    name=parsed.name,
                )
            run_sweep(spec, str(self.storage), name=name)
            self.log.append((shown, time.perf_counter() - start))
            write_text_atomic(str(self.log_file), json.dumps(self.log, indent=1))
        write_report(
            load_experiment(str(experiment)),
            str(self.reports / f"{self.prefix}{name}.html"),
            plotlyjs="directory",
        )
        return experiment

    def export(self, experiment: Path, out: Path, select_on: str = "val") -> None:
        """``taso-tune export EXPERIMENT -o OUT --select-on SPLIT``."""
        export_defaults(load_experiment(str(experiment)), str(out), select_on=select_on)


def best_sgd(experiment: Path) -> dict:
    """The Table IV winner: the constant-lr SGD configuration with the best mean validation accuracy."""
    best = load_experiment(str(experiment)).best()
    row = best[best["optimizer"] == "sgd"].iloc[0]
    return {
        "lr": float(row["hp.lr"]),
        "momentum": float(row["hp.momentum"]),
        "nesterov": bool(row["hp.nesterov"]),
    }


def table5_space(sgd: dict, protocol: Protocol, epochs: int, path: Path) -> Path:
    space = {
        "name": "repro-table5",
        "description": "Table V: TASO alpha x beta with the Table IV winner's lr and momentum",
        "train": {**protocol.train, "epochs": epochs},
        "seeds": 5,
        "scheduler": "none",
        "max_concurrent": 2,
        "blocks": [
            {
                "optimizer": "taso",
                **sgd,
                "alpha": {"grid": list(protocol.table5_alpha)},
                "beta": {"grid": list(protocol.table5_beta)},
            }
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def chosen_defaults(grids_defaults: Path, table5_defaults: Path, out: Path, dataset: str) -> Path:
    """Adagrad, RMSProp and the better of Adam/AMSGrad from the grids; TASO from Table V."""
    grids_document = load_defaults(str(grids_defaults))
    grids = grids_document["optimizers"]
    adam = max(("adam", "amsgrad"), key=lambda n: grids[n]["val_acc"]["mean"])
    optimizers = {name: grids[name] for name in ("adagrad", "rmsprop", adam)}
    optimizers["taso"] = load_defaults(str(table5_defaults))["optimizers"]["taso"]
    # the seeds that selected them: the confirmation runs (Tables VI-VII) train on fresh ones
    used = sorted(
        set(grids_document["provenance"]["seeds"])
        | set(load_defaults(str(table5_defaults))["provenance"]["seeds"])
    )
    document = {
        "format": FORMAT,
        "provenance": {
            "source": "the optimal-scenario search of make reproduce",
            "model": "lenet5",
            "dataset": dataset,
            "seeds": used,
            "epochs": grids_document["provenance"]["epochs"],
            "selected_on": "val_acc",
        },
        "optimizers": dict(sorted(optimizers.items())),
    }
    out.write_text(yaml.safe_dump(document, sort_keys=False))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", choices=list(PROTOCOLS), default="digits", help="the data set (default: digits)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="planned epochs (default: 15 on digits, 8 on Fashion-MNIST; the paper: 100)",
    )
    parser.add_argument(
        "--storage", help="results root (default: runs/reproduction, runs/reproduction-fashion)"
    )
    parser.add_argument("--reports", default=str(REPO / "dashboards/reproduction"))
    parser.add_argument("--doc", default=str(REPO / "docs/reproduction.md"))
    args = parser.parse_args(argv)
    protocol = PROTOCOLS[args.data]
    os.chdir(REPO)
    # paths relative to the repository (the commands run there): nothing of this machine's layout
    # ends up in the reports' provenance or the docs
    default_storage = "runs/reproduction" if args.data == "digits" else "runs/reproduction-fashion"
    storage, reports = (
        Path(os.path.relpath(Path(p).resolve(), REPO))
        for p in (args.storage or default_storage, args.reports)
    )
    storage.mkdir(parents=True, exist_ok=True)
    study = Study(storage, reports, protocol.prefix)
    epochs = args.epochs or protocol.epochs
    quarter = max(1, epochs // 4)

    grids = study.sweep("grids", protocol.grids, "--epochs", str(epochs))
    study.export(grids, storage / "grids-defaults.yaml")
    study.export(grids, storage / "grids-defaults-test.yaml", "test")
    space5 = table5_space(best_sgd(grids), protocol, epochs, storage / "spaces" / "table5.yaml")
    table5 = study.sweep("table5", str(space5))
    study.export(table5, storage / "table5-defaults.yaml")
    chosen = chosen_defaults(
        storage / "grids-defaults.yaml",
        storage / "table5-defaults.yaml",
        storage / f"{args.data}-defaults.yaml",
        args.data,
    )
    if (
        args.data == "digits" and epochs == PROTOCOLS["digits"].epochs
    ):  # what the transfer study applies
        Path(DIGITS_DEFAULTS).write_text(
            Path(DIGITS_DEFAULTS).read_text().split("format:")[0] + chosen.read_text()
        )
    pair = protocol.pair()
    study.sweep("table6", str(chosen), *pair, "--epochs", str(epochs), command="apply")
    study.sweep("table7", str(chosen), *pair, "--epochs", str(quarter), command="apply")
    study.sweep(
        "suboptimal",
        "search_spaces/defaults/paper.yaml",
        *pair,
        "--epochs",
        str(epochs),
        command="apply",
    )
    if protocol.transfer:
        study.sweep("transfer", protocol.transfer, *pair, "--epochs", str(epochs), command="apply")
    study.sweep("beyond", protocol.beyond, "--seeds", "5", "--epochs", str(epochs))
    if protocol.early_stopping:
        study.sweep("grids-asha", protocol.grids, "--epochs", str(epochs), "--scheduler", "asha")
        study.sweep(
            "grids-budget-sh", protocol.grids, "--epochs", str(epochs), "--scheduler", "budget-sh"
        )
    total = sum(seconds for _, seconds in study.log)  # the sweeps, as first run

    doc = Path(args.doc)
    if args.data == "digits":
        block = render_tables(storage, study.log, epochs, quarter, total)
    else:
        block = render_fashion_tables(storage, study.log, epochs, quarter, total)
    write_between_markers(
        doc, f"<!-- {protocol.marker}:begin -->", f"<!-- {protocol.marker}:end -->", block
    )
    print(f"\nwhole study: {total / 60:.1f} min; tables in {doc}; reports in {reports}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
