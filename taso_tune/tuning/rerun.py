"""Train again the trials a lost Ray Tune state held: ``taso-tune resume EXPERIMENT --rerun-lost``.

When the experiment's own Tune state cannot be read and no good copy of it is left
(:mod:`taso_tune.experiment.recovery`), Tune can restore none of its trials. The finished ones are
kept as they are; the lost ones (unfinished trials, and in a grid the trials that had not started)
are trained again as one Tune run of their own in ``EXPERIMENT/rerun-lost``, with the same
configurations and seeds, each from the last checkpoint its own folder still holds
(:data:`~taso_tune.tuning.trainable.FROM_CHECKPOINT`: a ``checkpoint_<n>`` inside it, kept relative
to the experiment and named in the plan printed), else from the start. A lost trial whose
``result.json`` cannot be read is left out of the results (a grid trains its configuration again as
one that had not started). Early stopping is off in
that run: its decisions were in the lost state, and a trial ASHA stopped early cannot be told from
one that was interrupted.

The decision is written before anything trains (:func:`~taso_tune.experiment.recovery.set_aside`),
so the rerun is resumed like any run once started, and
:class:`~taso_tune.experiment.reader.ExperimentReader` reads the whole as one experiment.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Mapping
from typing import Any

from taso_tune.core.records import STATE_FILE
from taso_tune.experiment.layout import (
    DAMAGED_PREFIX,
    FROM_CHECKPOINT,
    RERUN_FOLDER,
    RESULT_FILE,
    TUNE_STATE_PREFIX,
    trial_checkpoint,
)
from taso_tune.experiment.reader import RerunRecord, RerunTrial
from taso_tune.experiment.recovery import LostState, set_aside
from taso_tune.experiment.state import finished_trials, planned_trials
from taso_tune.spaces import SweepSpec, with_overrides
from taso_tune.tuning.observe.tensorboard import ensure_experiment_summary
from taso_tune.tuning.outcome import SweepOutcome, outcome
from taso_tune.tuning.preflight import Writes
from taso_tune.tuning.prepare import prepare
from taso_tune.tuning.trials import GridTrials, trial_source
from taso_tune.tuning.tuner import build_tuner


class RerunTrials(GridTrials):
    """The trials of the rerun: given flat configs (each with :data:`FROM_CHECKPOINT` relative to
    the ``experiment``), run as a grid without early stopping."""

    def __init__(self, spec: SweepSpec, trials: list[dict[str, Any]], experiment: str) -> None:
        self.spec = spec
        self.trials = [dict(trial) for trial in trials]
        self.experiment = experiment

    def flat_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The trial's flat config, its checkpoint resolved against the experiment's folder where
        it is now (the source is sent to the trials by the driver that runs them)."""
        flat = dict(config["trial"])
        if flat.get(FROM_CHECKPOINT):
            flat[FROM_CHECKPOINT] = checkpoint_path(self.experiment, flat[FROM_CHECKPOINT])
        return flat

    def fixed_configs(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in t.items() if k != FROM_CHECKPOINT} for t in self.trials]


def checkpoint_path(experiment: str, relative: str) -> str:
    """Where the checkpoint ``relative`` (``<trial folder>/checkpoint_<n>``, as the record keeps
    it) is in ``experiment``.

    Raises:
        ValueError: ``relative`` is anything else (an absolute path, ``..``): a rerun loads only a
            checkpoint of the experiment's own trials.
    """
    if trial_checkpoint(relative) is None:
        raise ValueError(f"{FROM_CHECKPOINT} {relative!r} is not <trial folder>/checkpoint_<n>")
    return posixpath.join(experiment.rstrip("/"), relative)


def _key(flat: Mapping[str, Any]) -> tuple[str, tuple[int, ...]]:
    return str(flat.get("config_id", "")), tuple(int(s) for s in flat["seeds"])


def plan_rerun(experiment: str, spec: SweepSpec, lost: LostState) -> RerunRecord:
    """Decide what the rerun trains and print it: which trials are kept, where each lost one
    starts. Nothing is written yet (:func:`run_rerun` does, once the storage is checked)."""
    source = trial_source(spec)
    started = {_key(source.flat_config(config)) for config in lost.kept_configs}
    trials, damaged = [], []
    for trial in lost.lost:
        if trial.damaged:  # nothing says what it trained: left out of the results
            damaged.append(trial.folder)
            continue
        if not trial.config:  # it never reported: a grid trains its configuration below
            continue
        flat = source.flat_config(trial.config)
        started.add(_key(flat))
        # relative to the experiment: a moved or copied experiment still finds it
        trials.append(
            RerunTrial({**flat, FROM_CHECKPOINT: trial.checkpoint}, trial.folder, trial.from_epoch)
        )
    if isinstance(source, GridTrials):  # the grid's trials that had not started
        for flat in source.trials:
            if _key(flat) not in started:
                trials.append(RerunTrial({**flat, FROM_CHECKPOINT: None}, None, 0))
    record = RerunRecord(lost.state, dict(lost.kept), trials, damaged)
    _say_plan(experiment, spec, record)
    return record


def _say_plan(experiment: str, spec: SweepSpec, record: RerunRecord) -> None:
    folder = posixpath.join(experiment, RERUN_FOLDER)
    stopping = "" if spec.scheduler.type == "none" else ", without early stopping"
    state = (
        f"Ray Tune's state {record.state} is lost (kept as {DAMAGED_PREFIX}{record.state})"
        if record.state
        else f"Ray Tune saved no state ({TUNE_STATE_PREFIX}*.json) of its trials"
    )
    print(
        f"{experiment}: {state}: keeping the {len(record.kept)} finished trials as they are; "
        f"training the {len(record.trials)} lost trials again in {folder}{stopping}:",
        flush=True,
    )
    grid = spec.search.type != "optuna"
    for name in record.damaged:
        then = (
            "its configuration trains again below, as one that had not started"
            if grid
            else "not run again (nothing says which configuration Optuna had proposed)"
        )
        print(
            f"  {name}: its {RESULT_FILE} cannot be read: left out of the results (the folder "
            f"stays as it is); {then}",
            flush=True,
        )
    epochs = spec.epochs
    for trial in record.trials:
        flat = trial.trial
        who = trial.lost or f"{flat.get('config_id', 'trial')} seeds {list(flat['seeds'])}"
        if trial.from_epoch:
            # the rule for a user's folder: never unpickle what it holds without saying so
            where = (
                f"from its checkpoint after epoch {trial.from_epoch} of {epochs}, loading "
                f"{posixpath.join(experiment, flat[FROM_CHECKPOINT], STATE_FILE)} "
                "(torch.load with weights_only: tensors and plain values only)"
            )
        elif trial.lost:
            where = "from the start (its folder holds no checkpoint)"
        else:
            where = "from the start (it had not started)"
        print(f"  {who}: {where}", flush=True)
    if not grid:
        left = planned_trials(spec) - len(record.kept) - len(record.trials)
        if left > 0:
            print(
                f"  the {left} trials Optuna had not proposed yet are not run: its searcher's "
                "state was in the lost state",
                flush=True,
            )


def run_rerun(
    experiment: str,
    spec: SweepSpec,
    record: RerunRecord,
    storage: str,
    address: str | None,
    *,
    new: bool = False,
) -> SweepOutcome:
    """Run the rerun of ``record``'s lost trials in ``EXPERIMENT/rerun-lost``, or continue it. A
    ``new`` one is written down (:func:`~taso_tune.experiment.recovery.set_aside`) once the data
    loaded and the storage showed room for it: refused before, it leaves the folder as it was."""
    start = time.perf_counter()
    if not record.trials:  # nothing to train (an Optuna run whose lost trials all were damaged)
        if new:
            set_aside(experiment, record)
        print(f"{experiment}: no lost trial to train again", flush=True)
        return SweepOutcome(experiment, len(record.kept), 0, 0.0)
    if spec.scheduler.type != "none":
        spec = with_overrides(spec, scheduler="none")
    source = RerunTrials(spec, [trial.trial for trial in record.trials], experiment)
    # a new rerun writes every lost trial; a rerun resumed, those not finished yet
    left = len(record.trials)
    if not new:
        left = len(record.kept) + len(record.trials) - finished_trials(experiment)
    writes = Writes(((max(left, 0), spec.epochs),), "resume")
    datasets = prepare(source, storage, address, writes=writes, experiment=experiment)
    if new:
        set_aside(experiment, record)
    ensure_experiment_summary(experiment, spec)
    tuner = build_tuner(
        source,
        datasets,
        experiment,
        RERUN_FOLDER,
        restore=True,
        label=posixpath.basename(experiment.rstrip("/")),
    )
    return outcome(experiment, tuner.fit(), start)
