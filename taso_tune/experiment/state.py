"""How far an experiment got, read from what Ray Tune saved, without starting Ray: trials planned,
trials finished, whether Tune started at all, and the flag a driver stopped by a signal leaves.

An experiment folder holds one Tune run (``experiment_state-*.json`` at its top) or, for budget-aware
successive halving, one per rung (``rung-<i>-<epochs>ep/``). A trial is finished when Tune marks it
``TERMINATED`` (it ran its epochs, or early stopping or divergence ended it) or when its own last
record says it ran all its epochs or every seed diverged: a signal can stop the driver after a
trial's last report was written and before Tune saved it as ended, and the results (report,
export) count such a trial as finished too.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import posixpath
import signal

import pyarrow.fs

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import BUDGET_SH_FILE, INTERRUPTED_FILE
from taso_tune.core.storage import (
    filesystem,
    read_experiment_file,
    read_text,
    result_records,
    write_experiment_file,
)
from taso_tune.spaces import SweepSpec
from taso_tune.spaces.expansion import count_configurations, count_trials

FINISHED = "TERMINATED"


def planned_trials(spec: SweepSpec) -> int:
    """The trials a sweep of ``spec`` runs when nothing stops it: configurations x seeds; for
    budget-aware successive halving, every rung's survivors x seeds."""
    if spec.scheduler.type != "budget-sh":
        return count_trials(spec)
    configs = count_configurations(spec.blocks, spec.search.num_samples)
    total = 0
    for _ in spec.scheduler.rung_epochs(spec.epochs):
        total += configs * spec.seeds
        configs = max(1, math.ceil(configs / spec.scheduler.reduction_factor))
    return total


def _run_folders(fs: pyarrow.fs.FileSystem, root: str) -> list[str]:
    entries = fs.get_file_info(pyarrow.fs.FileSelector(root))
    rungs = sorted(
        e.path
        for e in entries
        if e.type == pyarrow.fs.FileType.Directory
        and posixpath.basename(e.path).startswith("rung-")
    )
    return [root, *rungs]


def _trials(fs: pyarrow.fs.FileSystem, folder: str, strict: bool) -> list[dict] | None:
    """Every trial (Tune's record of it: ``trial_id``, ``status``, ...) in the newest experiment state
    of the Tune run in ``folder`` (``None``: Tune saved no state there)."""
    entries = fs.get_file_info(pyarrow.fs.FileSelector(folder))
    states = sorted(
        e.path for e in entries if posixpath.basename(e.path).startswith("experiment_state-")
    )
    if not states:
        return None
    try:
        data = json.loads(read_text(fs, states[-1]) or "{}")
        return [json.loads(trial) for trial, _runtime in data.get("trial_data", [])]
    except (ValueError, TypeError, AttributeError) as err:
        if strict:  # Tune would start every trial again from nothing
            raise ConfigError(
                "experiment",
                folder,
                f"its Ray Tune state {posixpath.basename(states[-1])} cannot "
                f"be read ({type(err).__name__}); resuming would train every trial again",
            ) from None
        return []


def trial_statuses(experiment: str, strict: bool = False) -> list[str] | None:
    """Every trial's Tune status across the experiment's runs; ``None`` when Tune never saved state.

    ``strict``: an experiment state that cannot be read is a :class:`ConfigError` (for resume),
    not an empty list of trials.
    """
    fs, root = filesystem(experiment)
    root = root.rstrip("/")
    if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
        return None
    found = [
        t
        for t in (_trials(fs, folder, strict) for folder in _run_folders(fs, root))
        if t is not None
    ]
    return [trial.get("status", "") for run in found for trial in run] if found else None


def record_finished(record: dict) -> bool:
    """Whether a trial's last report is its end: every seed ran the planned epochs or diverged."""
    return bool(record.get("diverged")) or (
        record.get("epoch") is not None and record.get("epoch") == record.get("planned_epochs")
    )


def _last_records(fs: pyarrow.fs.FileSystem, folder: str, trial_ids: set[str]) -> dict[str, dict]:
    """trial_id -> the last record in its ``result.json``, for the trials ``trial_ids`` of the Tune
    run in ``folder`` (a trial's folder name ends in ``_<trial_id>``), read as the results read it
    (:func:`~taso_tune.core.storage.result_records`); a damaged file gives no record."""
    out = {}
    for info in fs.get_file_info(pyarrow.fs.FileSelector(folder)):
        name = posixpath.basename(info.path)
        trial_id = next(
            (t for t in trial_ids if name.endswith(f"_{t}")), None
        )  # Tune's ids hold a '_'
        if info.type != pyarrow.fs.FileType.Directory or trial_id is None:
            continue
        path = posixpath.join(info.path, "result.json")
        try:
            records = result_records(read_text(fs, path) or "", path)
        except ConfigError:
            continue
        if records:
            out[trial_id] = records[-1]
    return out


def _finished_in(fs: pyarrow.fs.FileSystem, folder: str) -> int:
    """How many trials of the Tune run in ``folder`` are finished (module docstring); the results of
    only the trials Tune does not mark finished are read."""
    trials = _trials(fs, folder, strict=False) or []
    open_ids = {str(t.get("trial_id")) for t in trials if t.get("status") != FINISHED}
    records = _last_records(fs, folder, open_ids) if open_ids else {}
    return sum(
        t.get("status") == FINISHED or record_finished(records.get(str(t.get("trial_id")), {}))
        for t in trials
    )


def finished_trials(experiment: str) -> int:
    """How many of the experiment's trials are finished (module docstring)."""
    fs, root = filesystem(experiment)
    root = root.rstrip("/")
    if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
        return 0
    return sum(_finished_in(fs, folder) for folder in _run_folders(fs, root))


def all_finished(experiment: str, spec: SweepSpec, planned: int) -> bool:
    """Whether there is nothing left to resume: budget-sh picked its winner, or every planned trial
    of the Tune run is finished."""
    if spec.scheduler.type == "budget-sh":
        text = read_experiment_file(experiment, BUDGET_SH_FILE)
        try:
            return text is not None and "winner" in json.loads(text)
        except ValueError:
            return False
    statuses = trial_statuses(experiment) or []
    return len(statuses) >= planned > 0 and all(status == FINISHED for status in statuses)


def write_interrupted(experiment: str, signum: int | str, planned: int, finished: int) -> None:
    """Mark the experiment partial: which signal stopped it (or, a text, what else did), when, and
    the planned total."""
    record = {
        "signal": signal.Signals(signum).name if isinstance(signum, int) else signum,
        "interrupted_at": _dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
        "planned_trials": planned,
        "finished_trials": finished,
    }
    write_experiment_file(experiment, INTERRUPTED_FILE, json.dumps(record, indent=2) + "\n")
