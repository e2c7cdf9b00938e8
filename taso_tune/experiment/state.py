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
import signal
from collections.abc import Mapping
from typing import Any

from taso_tune.core.errors import DamagedResults
from taso_tune.core.records import BUDGET_SH_FILE, INTERRUPTED_FILE
from taso_tune.core.storage import read_experiment_file, write_experiment_file
from taso_tune.experiment.reader import FINISHED, ExperimentReader, TuneRun
from taso_tune.spaces import SweepSpec
from taso_tune.spaces.expansion import count_configurations


def trials_per_configuration(spec: SweepSpec) -> int:
    """A trial trains every seed of its configuration, or one seed with ``seeds_per_trial: 1``."""
    return 1 if spec.seeds_per_trial == "all" else spec.seeds


def planned_trials(spec: SweepSpec) -> int:
    """The trials a sweep of ``spec`` runs when nothing stops it: configurations (Optuna: its
    proposals) x trials per configuration (one, or one per seed with ``seeds_per_trial: 1``); for
    budget-aware successive halving, every rung's surviving configurations x trials per
    configuration. A trial is what Tune runs and what :func:`finished_trials` counts."""
    per_config = trials_per_configuration(spec)
    if spec.search.type == "optuna":
        return spec.search.num_samples * per_config
    configs = count_configurations(spec.blocks, spec.search.num_samples)
    if spec.scheduler.type != "budget-sh":
        return configs * per_config
    total = 0
    for _ in spec.scheduler.rung_epochs(spec.epochs):
        total += configs * per_config
        configs = max(1, math.ceil(configs / spec.scheduler.reduction_factor))
    return total


def _statuses(reader: ExperimentReader, run: TuneRun, strict: bool) -> dict[str, str] | None:
    """Tune's statuses of ``run``'s trials; a damaged state is an error with ``strict`` (Tune would
    start every trial again from nothing) and no trials without."""
    try:
        return reader.tune_statuses(run)
    except DamagedResults as err:
        if strict:
            raise DamagedResults(
                err.field, err.value, f"{err.problem}; resuming would train every trial again"
            ) from None
        return {}


def trial_statuses(experiment: str, strict: bool = False) -> list[str] | None:
    """Every trial's Tune status across the experiment's runs; ``None`` when Tune never saved state.

    ``strict``: an experiment state that cannot be read is a :class:`ConfigError` (for resume),
    not an empty list of trials.
    """
    reader = ExperimentReader(experiment)
    if not reader.exists():
        return None
    found = [s for s in (_statuses(reader, run, strict) for run in reader.runs()) if s is not None]
    return [status for run in found for status in run.values()] if found else None


def record_finished(record: Mapping[str, Any]) -> bool:
    """Whether a trial's last report is its end: every seed ran the planned epochs or diverged."""
    return bool(record.get("diverged")) or (
        record.get("epoch") is not None and record.get("epoch") == record.get("planned_epochs")
    )


def _finished_in(reader: ExperimentReader, run: TuneRun) -> int:
    """How many trials of ``run`` are finished (module docstring); the results of only the trials
    Tune does not mark finished are read, and a damaged one counts as not finished."""
    statuses = _statuses(reader, run, strict=False) or {}
    open_ids = {t for t, status in statuses.items() if status != FINISHED}
    ended = set()
    for folder in reader.trial_folders(run, only=open_ids) if open_ids else []:
        try:
            trial = reader.trial(run, folder, statuses)
        except DamagedResults:
            continue
        if trial is not None and record_finished(trial.reports[-1]):
            ended.add(trial.trial_id)
    return sum(status == FINISHED or t in ended for t, status in statuses.items())


def finished_trials(experiment: str) -> int:
    """How many of the experiment's trials are finished (module docstring)."""
    reader = ExperimentReader(experiment)
    if not reader.exists():
        return 0
    return sum(_finished_in(reader, run) for run in reader.runs())


def experiment_planned(experiment: str, spec: SweepSpec) -> int:
    """The trials the experiment at ``experiment`` runs in all: :func:`planned_trials`, or once
    ``resume --rerun-lost`` trained its lost trials again, the trials it kept and those it reran
    (an Optuna sweep's proposals never made are in neither)."""
    try:
        record = ExperimentReader(experiment).rerun
    except DamagedResults:
        record = None
    if record is None:
        return planned_trials(spec)
    return len(record.kept) + len(record.trials)


def unfinished_checkpoint_bytes(experiment: str) -> int:
    """The bytes the checkpoints of the experiment's unfinished trials take now: a resume replaces
    them as those trials go on (Tune keeps the newest few), so they are no new writes. Only trials
    Tune's state lists count (Tune restores those); a state that cannot be read lists none."""
    reader = ExperimentReader(experiment)
    if not reader.exists():
        return 0
    held = 0
    for run in reader.runs():
        statuses = _statuses(reader, run, strict=False) or {}
        open_ids = {t for t, status in statuses.items() if status != FINISHED}
        for folder in reader.trial_folders(run, only=open_ids) if open_ids else []:
            try:
                trial = reader.trial(run, folder, statuses)
            except DamagedResults:
                trial = None
            if trial is not None and record_finished(trial.reports[-1]):
                continue
            held += reader.checkpoint_bytes(folder)
    return held


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
