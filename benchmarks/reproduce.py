"""Run the paper's whole protocol on LeNet5/digits with taso-tune commands (``make reproduce``).

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

    python benchmarks/reproduce.py [--epochs 15] [--storage runs/reproduction]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import write_between_markers  # noqa: E402
from reproduction_tables import render_tables  # noqa: E402

from taso_tune.cli import build_parser  # noqa: E402
from taso_tune.commands.sweep_cmd import resolve_spec  # noqa: E402
from taso_tune.results.experiment import load_experiment  # noqa: E402
from taso_tune.results.export import FORMAT, export_defaults, load_defaults  # noqa: E402
from taso_tune.results.report import write_report  # noqa: E402
from taso_tune.tuning import resume_sweep, run_sweep  # noqa: E402

BEGIN, END = "<!-- reproduction:begin -->", "<!-- reproduction:end -->"
GRIDS = "search_spaces/reproduction/digits_grids.yaml"


class Study:
    """Runs the study's steps through the library (the same calls as the ``taso-tune`` commands),
    remembering each sweep with its equivalent command and wall time."""

    def __init__(self, storage: Path, reports: Path) -> None:
        self.storage, self.reports = storage, reports
        # the sweeps' commands and wall times, kept across reruns (a rerun only resumes them)
        self.log_file = storage / "commands.json"
        self.log: list[tuple[str, float]] = json.loads(self.log_file.read_text()) if self.log_file.exists() else []

    def sweep(self, name: str, *args: str) -> Path:
        """``taso-tune sweep ARGS --name NAME --storage STORAGE`` (or ``resume`` on a rerun), then its report."""
        experiment = self.storage / name
        start = time.perf_counter()
        if experiment.exists():  # a rerun keeps finished parts and continues interrupted ones
            print(f"\n$ taso-tune resume {experiment}", flush=True)
            resume_sweep(str(experiment))
        else:
            shown = shlex.join(["taso-tune", "sweep", *args, "--name", name, "--storage", str(self.storage)])
            print(f"\n$ {shown}", flush=True)
            parsed = build_parser().parse_args(["sweep", *args, "--name", name, "--storage", str(self.storage)])
            run_sweep(resolve_spec(parsed), str(self.storage), name=name)
            self.log.append((shown, time.perf_counter() - start))
            self.log_file.write_text(json.dumps(self.log, indent=1))
        write_report(load_experiment(str(experiment)), str(self.reports / f"{name}.html"), plotlyjs="directory")
        return experiment

    def export(self, experiment: Path, out: Path, select_on: str = "val") -> None:
        """``taso-tune export EXPERIMENT -o OUT --select-on SPLIT``."""
        export_defaults(load_experiment(str(experiment)), str(out), select_on=select_on)


def best_sgd(experiment: Path) -> dict:
    """The Table IV winner: the constant-lr SGD configuration with the best mean validation accuracy."""
    best = load_experiment(str(experiment)).best()
    row = best[best["optimizer"] == "sgd"].iloc[0]
    return {"lr": float(row["hp.lr"]), "momentum": float(row["hp.momentum"]), "nesterov": bool(row["hp.nesterov"])}


def table5_space(sgd: dict, epochs: int, path: Path) -> Path:
    space = {
        "name": "repro-table5",
        "description": "Table V: TASO alpha x beta with the Table IV winner's lr and momentum",
        "train": {"model": "lenet5", "dataset": "digits", "epochs": epochs, "batch_size": 64},
        "seeds": 5, "scheduler": "none", "max_concurrent": 2,
        "blocks": [{"optimizer": "taso", **sgd, "alpha": {"grid": [10, 25, 50]}, "beta": {"grid": [0.3, 0.5, 0.7]}}],
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def chosen_defaults(grids_defaults: Path, table5_defaults: Path, out: Path) -> Path:
    """Adagrad, RMSProp and the better of Adam/AMSGrad from the grids; TASO from Table V."""
    grids_document = load_defaults(str(grids_defaults))
    grids = grids_document["optimizers"]
    adam = max(("adam", "amsgrad"), key=lambda n: grids[n]["val_acc"]["mean"])
    optimizers = {name: grids[name] for name in ("adagrad", "rmsprop", adam)}
    optimizers["taso"] = load_defaults(str(table5_defaults))["optimizers"]["taso"]
    # the seeds that selected them: the confirmation runs (Tables VI-VII) train on fresh ones
    used = sorted(set(grids_document["provenance"]["seeds"]) | set(load_defaults(str(table5_defaults))["provenance"]["seeds"]))
    document = {"format": FORMAT, "provenance": {"source": "the optimal-scenario search of make reproduce",
                                                 "model": "lenet5", "dataset": "digits", "seeds": used},
                "optimizers": dict(sorted(optimizers.items()))}  # fmt: skip
    out.write_text(yaml.safe_dump(document, sort_keys=False))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15, help="planned epochs (the paper: 100)")
    parser.add_argument("--storage", default=str(REPO / "runs/reproduction"))
    parser.add_argument("--reports", default=str(REPO / "dashboards/reproduction"))
    parser.add_argument("--doc", default=str(REPO / "docs/reproduction.md"))
    args = parser.parse_args(argv)
    os.chdir(REPO)
    # paths relative to the repository (the commands run there): nothing of this machine's layout
    # ends up in the reports' provenance or the docs
    storage, reports = (Path(os.path.relpath(Path(p).resolve(), REPO)) for p in (args.storage, args.reports))
    storage.mkdir(parents=True, exist_ok=True)
    study = Study(storage, reports)
    epochs, quarter = args.epochs, max(1, args.epochs // 4)

    grids = study.sweep("grids", GRIDS, "--epochs", str(epochs))
    study.export(grids, storage / "grids-defaults.yaml")
    study.export(grids, storage / "grids-defaults-test.yaml", "test")
    space5 = table5_space(best_sgd(grids), epochs, storage / "spaces" / "table5.yaml")
    table5 = study.sweep("table5", str(space5))
    study.export(table5, storage / "table5-defaults.yaml")
    chosen = chosen_defaults(storage / "grids-defaults.yaml", storage / "table5-defaults.yaml",
                             storage / "digits-defaults.yaml")  # fmt: skip
    pair = ["--model", "lenet5", "--dataset", "digits", "--seeds", "5"]
    study.sweep("table6", "--defaults", str(chosen), *pair, "--epochs", str(epochs))
    study.sweep("table7", "--defaults", str(chosen), *pair, "--epochs", str(quarter))
    study.sweep("suboptimal", "--defaults", "search_spaces/defaults/paper.yaml", *pair, "--epochs", str(epochs))
    study.sweep("beyond", "search_spaces/beyond.yaml", "--seeds", "5", "--epochs", str(epochs))
    study.sweep("grids-asha", GRIDS, "--epochs", str(epochs), "--scheduler", "asha")
    study.sweep("grids-budget-sh", GRIDS, "--epochs", str(epochs), "--scheduler", "budget-sh")
    total = sum(seconds for _, seconds in study.log)  # the sweeps, as first run

    doc = Path(args.doc)
    write_between_markers(doc, BEGIN, END, render_tables(storage, study.log, epochs, quarter, total))
    print(f"\nwhole study: {total / 60:.1f} min; tables in {doc}; reports in {reports}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
