"""Read an experiment folder into tidy pandas frames and aggregate over seeds.

Nothing here retrains or imports Ray: it reads what the trials reported (each trial folder's
``result.json``, one JSON line per epoch) and Ray Tune's experiment state (trial status), from a
local folder or a storage URI (through pyarrow's file systems).

Two frames: ``trials`` (one row per trial: configuration, seed, status, final metrics, epochs run,
node) and ``epochs`` (one row per trial and epoch: every reported metric). Aggregation over seeds
uses only trials that ran every planned epoch, so an ASHA-stopped trial is never compared on a
metric it did not reach.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import pandas as pd
import pyarrow.fs
import yaml

from taso_tune.errors import ConfigError
from taso_tune.names import EPOCH_FIELDS, METRICS, SPACE_FILE, TrialStatus
from taso_tune.storage import filesystem, read_text

EPOCH_COLUMNS = (*(f for f in EPOCH_FIELDS if f != "total_epochs"), "diverged")
SelectOn = Literal["val", "test"]


@dataclass
class Experiment:
    """One experiment's results: where it is, its space (as written), and the two frames."""

    path: str
    space: dict
    trials: pd.DataFrame
    epochs: pd.DataFrame

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def final_trials(self) -> pd.DataFrame:
        """The trials that compare configurations at the planned length: all of them, except in a
        budget-aware successive-halving sweep, where only the last rung's trials ran that long."""
        rungs = self.trials["rung"].dropna()
        if rungs.empty:
            return self.trials
        return self.trials[self.trials["rung"] == rungs.max()]

    @cached_property
    def aggregated(self) -> pd.DataFrame:
        """:func:`aggregate` of :attr:`final_trials`: mean, std and n per configuration over its
        complete seeds. Computed once; the frames are read-only."""
        return aggregate(self.final_trials)

    def best(self, select_on: SelectOn = "val") -> pd.DataFrame:
        """:func:`best_per_optimizer` of :attr:`aggregated`: each family's best configuration, best first."""
        return best_per_optimizer(self.aggregated, select_on)


def _trial_states(fs: pyarrow.fs.FileSystem, entries: list[pyarrow.fs.FileInfo]) -> dict[str, str]:
    """trial_id -> Ray Tune status (TERMINATED, ERROR, RUNNING, ...) from the newest experiment state
    among a Tune run folder's ``entries``."""
    states = sorted(i.path for i in entries if posixpath.basename(i.path).startswith("experiment_state-"))
    if not states:
        return {}
    text = read_text(fs, states[-1])
    out = {}
    for trial_json, _runtime in json.loads(text or "{}").get("trial_data", []):
        trial = json.loads(trial_json)
        out[trial["trial_id"]] = trial.get("status", "")
    return out


def _records(text: str) -> list[dict]:
    by_epoch: dict[int, dict] = {}
    for line in text.splitlines():
        if line.strip():
            rec = json.loads(line)
            if "epoch" in rec:
                by_epoch[int(rec["epoch"])] = rec  # a resumed trial may repeat the epoch in flight
    return [by_epoch[k] for k in sorted(by_epoch)]


def _status(records: list[dict], tune_status: str, has_error: bool) -> TrialStatus:
    last = records[-1] if records else {}
    if any(r.get("diverged") for r in records):
        return "diverged"
    if last and last.get("epoch") == last.get("planned_epochs"):
        return "complete"
    if tune_status == "ERROR" or (has_error and tune_status != "RUNNING"):
        return "errored"
    if tune_status == "TERMINATED":
        return "stopped-early"
    return "unfinished"


def load_experiment(path: str) -> Experiment:
    """Read the experiment folder ``path`` (local or URI) into an :class:`Experiment`."""
    fs, root = filesystem(path)
    if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
        raise ConfigError("experiment", path, "no such experiment folder")
    space_text = read_text(fs, posixpath.join(root, SPACE_FILE))
    space = yaml.safe_load(space_text) if space_text else {}
    trial_rows, epoch_rows = [], []
    entries = _list(fs, root)
    runs = [(entries, None)]
    for info in entries:
        name = posixpath.basename(info.path)
        if info.type == pyarrow.fs.FileType.Directory and name.startswith("rung-"):
            runs.append((_list(fs, info.path), int(name.split("-")[1])))  # budget-sh: one Tune run per rung
    for run_entries, rung in runs:
        _read_trials(fs, run_entries, rung, trial_rows, epoch_rows)
    if not trial_rows:
        raise ConfigError("experiment", path, "contains no trial results yet")
    trials = pd.DataFrame(trial_rows).sort_values(["config_id", "seed"], kind="stable").reset_index(drop=True)
    epochs = pd.DataFrame(epoch_rows).sort_values(["config_id", "seed", "epoch"], kind="stable")
    return Experiment(path, space, trials, epochs.reset_index(drop=True))


def _list(fs: pyarrow.fs.FileSystem, folder: str) -> list[pyarrow.fs.FileInfo]:
    return fs.get_file_info(pyarrow.fs.FileSelector(folder))


def _read_trials(fs: pyarrow.fs.FileSystem, entries: list[pyarrow.fs.FileInfo], rung: int | None,
                 trial_rows: list, epoch_rows: list) -> None:  # fmt: skip
    """Read the trial folders among a Tune run folder's ``entries`` into the row lists."""
    states = _trial_states(fs, entries)
    for info in entries:
        if info.type != pyarrow.fs.FileType.Directory:
            continue
        text = read_text(fs, posixpath.join(info.path, "result.json"))
        records = _records(text) if text else []
        if not records:
            continue
        trial_id = records[-1].get("trial_id", "")
        has_error = read_text(fs, posixpath.join(info.path, "error.txt")) is not None
        row = _trial_row(posixpath.basename(info.path), records, states.get(trial_id, ""), has_error)
        trial_rows.append({**row, "rung": rung})
        for rec in records:
            epoch_rows.append({"trial_id": trial_id, "rung": rung, "config_id": rec.get("config_id"),
                               "optimizer": rec.get("optimizer"), "seed": rec.get("seed"),
                               **{c: rec.get(c) for c in EPOCH_COLUMNS}})  # fmt: skip


def _trial_row(dirname: str, records: list[dict], tune_status: str, has_error: bool) -> dict:
    last = records[-1]
    row = {
        "trial_id": last.get("trial_id"),
        "trial_name": dirname,
        "config_id": last.get("config_id"),
        "optimizer": last.get("optimizer"),
        "seed": last.get("seed"),
        "model": last.get("model"),
        "dataset": last.get("dataset"),
        "batch_size": last.get("batch_size"),
        "planned_epochs": last.get("planned_epochs"),
        "epochs_run": last.get("epoch"),
        "status": _status(records, tune_status, has_error),
        "node": last.get("node_ip"),
        "node_id": last.get("node_id"),
        "wall_seconds": last.get("time_total_s"),
    }
    row.update({m: last.get(m, math.nan) for m in METRICS})
    row.update({f"hp.{k}": (tuple(v) if isinstance(v, list) else v) for k, v in (last.get("hp") or {}).items()})
    return row


def hyperparameter_columns(frame: pd.DataFrame) -> list[str]:
    """The ``hp.*`` columns, in a stable order."""
    return [c for c in frame.columns if c.startswith("hp.")]


def aggregate(trials: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Mean, std (sample, ddof=1) and n per configuration over seeds, complete trials only.

    Columns: config_id, optimizer, the hp.* columns, n, and ``<metric>_mean`` / ``<metric>_std``.
    """
    done = trials[trials["status"] == "complete"]
    if done.empty:
        return pd.DataFrame(columns=["config_id", "optimizer", "n"])
    rows = []
    for config_id, group in done.groupby("config_id", sort=True):
        first = group.iloc[0]
        row = {"config_id": config_id, "optimizer": first["optimizer"], "model": first["model"],
               "dataset": first["dataset"], "epochs": first["planned_epochs"], "n": len(group)}  # fmt: skip
        row.update({c: first[c] for c in hyperparameter_columns(trials)})
        for m in metrics:
            values = pd.to_numeric(group[m], errors="coerce")
            row[f"{m}_mean"] = values.mean()
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def selection_metric(select_on: SelectOn = "val") -> str:
    """The metric that picks the best configuration: validation accuracy (our default) or test
    accuracy (the paper's protocol, which tuned on the test set)."""
    if select_on not in ("val", "test"):
        raise ConfigError("--select-on", select_on, "unknown split", choices=["val", "test"])
    return f"{select_on}_acc"


def best_per_optimizer(aggregated: pd.DataFrame, select_on: SelectOn = "val") -> pd.DataFrame:
    """The configuration with the highest mean selection accuracy for each optimizer family."""
    key = f"{selection_metric(select_on)}_mean"
    if aggregated.empty or key not in aggregated:
        return aggregated.iloc[0:0]
    ranked = aggregated.dropna(subset=[key]).sort_values([key, "config_id"], ascending=[False, True])
    best = ranked.groupby("optimizer", sort=False).head(1)
    return best.sort_values(key, ascending=False).reset_index(drop=True)


def status_counts(trials: pd.DataFrame) -> dict[str, int]:
    return {k: int(v) for k, v in trials["status"].value_counts().sort_index().items()}


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    """``mean (± std)`` the way the paper's tables print accuracy (percent by default)."""
    if mean != mean:
        return "n/a"
    return f"{mean * scale:.{digits}f} (± {std * scale:.{digits}f})"


def format_summary(experiment: Experiment, select_on: SelectOn = "val") -> str:
    """A plain-text summary: trial counts by status, epochs run, and the best configuration per
    optimizer with mean ± std over seeds and n."""
    trials = experiment.trials
    best = experiment.best(select_on)
    planned = int(trials["planned_epochs"].sum())
    run = int(trials["epochs_run"].sum())
    lines = [
        f"experiment {experiment.path}",
        f"trials: {len(trials)} ({', '.join(f'{k} {v}' for k, v in status_counts(trials).items())}); "
        f"epochs run {run} of {planned} planned ({run / max(planned, 1):.0%})",
        f"best configuration per optimizer (selected on {selection_metric(select_on)}, mean (± std) over n seeds):",
    ]
    if best.empty:
        lines.append("  no configuration has complete trials yet")
    for _, row in best.iterrows():
        hps = ", ".join(f"{c[3:]}={row[c]}" for c in hyperparameter_columns(best) if present(row[c]))
        lines.append(
            f"  {row['optimizer']:<13} val_acc {pm(row['val_acc_mean'], row['val_acc_std'])}  "
            f"test_acc {pm(row['test_acc_mean'], row['test_acc_std'])}  n={row['n']}  [{row['config_id']}]"
        )
        lines.append(f"  {'':<13} {hps}")
    return "\n".join(lines)


def present(value) -> bool:
    """Whether a hyperparameter cell holds a value (not None, not NaN: a field the family lacks)."""
    return not (value is None or (isinstance(value, float) and math.isnan(value)))
