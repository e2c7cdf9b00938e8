"""Read an experiment folder into tidy pandas frames and aggregate over seeds.

Nothing here retrains or imports Ray: it reads what the trials reported (each trial folder's
``result.json``, one JSON line per epoch) and Ray Tune's experiment state (trial status), from a
local folder or a storage URI (through pyarrow's file systems).

A trial holds every seed of one configuration (``per_seed`` in each report). Two frames: ``trials``
(one row per seed of each trial: configuration, seed, status, final metrics, epochs run, node) and
``epochs`` (one row per seed and epoch: every metric the seed reported). Aggregation over seeds
(:mod:`taso_tune.results.aggregate`) follows the one statistics rule of :mod:`taso_tune.stats.seeds`.
"""

from __future__ import annotations

import json
import math
import posixpath
from dataclasses import dataclass
from functools import cached_property

import pandas as pd
import pyarrow.fs
import yaml

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import EPOCH_FIELDS, METRICS, SPACE_FILE, TrialStatus
from taso_tune.core.storage import filesystem, read_text, result_records
from taso_tune.results.aggregate import SelectOn, aggregate, best_per_optimizer

EPOCH_COLUMNS = (*(f for f in EPOCH_FIELDS if f != "total_epochs"), "diverged")


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

    @property
    def planned_seeds(self) -> int:
        """Seeds per configuration the space planned (the most any trial carried, if no space)."""
        seeds = self.space.get("seeds")
        if isinstance(seeds, list):
            return len(seeds)
        if isinstance(seeds, dict):
            return int(seeds.get("count", 1))
        if isinstance(seeds, int):
            return seeds
        return int(self.trials.groupby("config_id")["seed"].nunique().max())

    @property
    def per_seed_stopping(self) -> bool:
        """Whether ASHA stopped seeds one by one (``scheduler.per_seed``): a biased baseline."""
        scheduler = self.space.get("scheduler")
        return isinstance(scheduler, dict) and bool(scheduler.get("per_seed"))

    @cached_property
    def aggregated(self) -> pd.DataFrame:
        """:func:`~taso_tune.results.aggregate.aggregate` of :attr:`final_trials`: per configuration
        n of the planned seeds, mean, std and interval by the one statistics rule, and the verdicts.
        Computed once; the frames are read-only."""
        return aggregate(self.final_trials, self.planned_seeds, self.space.get("mode", "max"))

    def best(self, select_on: SelectOn = "val") -> pd.DataFrame:
        """Each family's best comparable configuration, best first (:func:`best_per_optimizer`)."""
        return best_per_optimizer(self.aggregated, select_on)


def _trial_states(fs: pyarrow.fs.FileSystem, entries: list[pyarrow.fs.FileInfo]) -> dict[str, str]:
    """trial_id -> Ray Tune status (TERMINATED, ERROR, RUNNING, ...) from the newest experiment state
    among a Tune run folder's ``entries``."""
    states = sorted(
        i.path for i in entries if posixpath.basename(i.path).startswith("experiment_state-")
    )
    if not states:
        return {}
    text = read_text(fs, states[-1])
    out = {}
    for trial_json, _runtime in json.loads(text or "{}").get("trial_data", []):
        trial = json.loads(trial_json)
        out[trial["trial_id"]] = trial.get("status", "")
    return out


def _seed_status(
    records: list[dict], planned: int, tune_status: str, has_error: bool
) -> TrialStatus:
    """How one seed of a trial ended, from its own records and its trial's Ray Tune status."""
    last = records[-1] if records else {}
    if last.get("status") == "diverged":
        return "diverged"
    if last and last.get("epoch") == planned:
        return "complete"
    if tune_status == "ERROR" or (has_error and tune_status != "RUNNING"):
        return "errored"
    if tune_status == "TERMINATED":
        return "stopped-early"
    return "unfinished"


def _seed_records(records: list[dict], seed: str) -> list[dict]:
    """One seed's records from its trial's, each epoch once (a diverged seed is repeated frozen)."""
    by_epoch: dict[int, dict] = {}
    for rec in records:
        own = (rec.get("per_seed") or {}).get(seed)
        if own is not None:
            by_epoch[int(own["epoch"])] = own
    return [by_epoch[k] for k in sorted(by_epoch)]


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
            runs.append(
                (_list(fs, info.path), int(name.split("-")[1]))
            )  # budget-sh: one Tune run per rung
    for run_entries, rung in runs:
        _read_trials(fs, run_entries, rung, trial_rows, epoch_rows)
    if not trial_rows:
        raise ConfigError("experiment", path, "contains no trial results yet")
    trials = (
        pd.DataFrame(trial_rows)
        .sort_values(["config_id", "seed"], kind="stable")
        .reset_index(drop=True)
    )
    epochs = pd.DataFrame(epoch_rows).sort_values(["config_id", "seed", "epoch"], kind="stable")
    return Experiment(path, space, trials, epochs.reset_index(drop=True))


def _list(fs: pyarrow.fs.FileSystem, folder: str) -> list[pyarrow.fs.FileInfo]:
    return fs.get_file_info(pyarrow.fs.FileSelector(folder))


def _read_trials(
    fs: pyarrow.fs.FileSystem,
    entries: list[pyarrow.fs.FileInfo],
    rung: int | None,
    trial_rows: list,
    epoch_rows: list,
) -> None:
    """Read the trial folders among a Tune run folder's ``entries`` into the row lists: one trial row
    per seed of each trial, one epoch row per seed and epoch."""
    states = _trial_states(fs, entries)
    for info in entries:
        if info.type != pyarrow.fs.FileType.Directory:
            continue
        result = posixpath.join(info.path, "result.json")
        text = read_text(fs, result)
        records = result_records(text, result) if text else []
        if not records:
            continue
        last = records[-1]
        trial_id = last.get("trial_id", "")
        has_error = read_text(fs, posixpath.join(info.path, "error.txt")) is not None
        for seed in last.get("seeds") or []:
            own = _seed_records(records, str(seed))
            status = _seed_status(
                own, last.get("planned_epochs"), states.get(trial_id, ""), has_error
            )
            row = _trial_row(
                posixpath.basename(info.path), last, own[-1] if own else {}, int(seed), status
            )
            trial_rows.append({**row, "rung": rung})
            for rec in own:
                epoch_rows.append(
                    {
                        "trial_id": trial_id,
                        "rung": rung,
                        "config_id": last.get("config_id"),
                        "optimizer": last.get("optimizer"),
                        "seed": int(seed),
                        **{c: rec.get(c) for c in EPOCH_COLUMNS},
                        "diverged": rec.get("status") == "diverged",
                    }
                )


def _trial_row(dirname: str, last: dict, own: dict, seed: int, status: TrialStatus) -> dict:
    """One seed of a trial: its labels (from the trial's last report) and its own final metrics."""
    sizes = last.get("split_sizes") or {}
    row = {
        "trial_id": last.get("trial_id"),
        "trial_name": dirname,
        "config_id": last.get("config_id"),
        "optimizer": last.get("optimizer"),
        "seed": seed,
        "seeds_in_trial": len(last.get("seeds") or []),
        "model": last.get("model"),
        "dataset": last.get("dataset"),
        "batch_size": last.get("batch_size"),
        "num_classes": last.get("num_classes"),
        **{f"{split}_size": sizes.get(split) for split in ("train", "val", "test")},
        "planned_epochs": last.get("planned_epochs"),
        "epochs_run": own.get("epoch", 0),
        "status": status,
        "node": last.get("node_ip"),
        "node_id": last.get("node_id"),
        "wall_seconds": last.get("time_total_s"),
    }
    row.update({m: own.get(m, math.nan) for m in METRICS})
    row.update(
        {
            f"hp.{k}": (tuple(v) if isinstance(v, list) else v)
            for k, v in (last.get("hp") or {}).items()
        }
    )
    return row
