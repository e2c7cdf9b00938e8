"""The Ray layer: the only package of taso-tune, with ``cluster``, that imports ``ray``.

:func:`run_sweep` and :func:`resume_sweep` dispatch on the space's scheduler: one Tuner run
(ASHA or no early stopping, :mod:`~taso_tune.tuning.tuner`) or budget-aware successive halving
(a Tuner run per rung, :mod:`~taso_tune.tuning.budget_sh`). Either way the driver holds the
experiment's lock (:mod:`~taso_tune.experiment.lock`) and turns SIGINT/SIGTERM into a clean stop
(:mod:`~taso_tune.tuning.interrupts`). The rooms: ``trials`` (grid or Optuna trials, the one seam over
the search type), ``paths`` (the experiment folder), ``space_file`` (the resolved space beside the
results), ``prepare`` (data, Ray and storage before the first trial), ``data`` (the data sets, loaded
once), ``tuner`` (the one Tuner build-or-restore), ``tune_settings`` and ``trial_names`` (what the
Tuner is configured with), ``schedulers``, ``trainable`` (one trial on a worker), ``outcome`` (what a
run returns), ``preflight`` (cluster checks, free space), ``rerun`` (the trials a lost Tune state
held, trained again), ``interrupts`` (SIGINT/SIGTERM) and ``observe`` (progress lines, TensorBoard,
Prometheus gauges).
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import signal
import time
from collections.abc import Callable

from ray import tune

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import (
    BUDGET_SH_FILE,
    HPARAMS_FILE,
    INTERRUPTED_FILE,
    LOCK_FILE,
    RESOURCES_FILE,
    SPACE_FILE,
)
from taso_tune.core.storage import (
    delete_experiment_file,
    first_line,
    remove_if_only,
    resolve,
    storage_full,
)
from taso_tune.experiment.lock import ExperimentLock
from taso_tune.experiment.reader import ExperimentReader, read_space
from taso_tune.experiment.recovery import recover_state, set_aside
from taso_tune.experiment.state import (
    all_finished,
    experiment_planned,
    finished_trials,
    planned_trials,
    trial_statuses,
    write_interrupted,
)
from taso_tune.experiment.trust import check_trusted_folder
from taso_tune.spaces import SweepSpec
from taso_tune.tuning import budget_sh
from taso_tune.tuning.interrupts import SIGNALS, STORAGE, StorageInterrupted, SweepInterrupted
from taso_tune.tuning.observe.tensorboard import (
    ensure_experiment_summary,
    write_experiment_summary,
)
from taso_tune.tuning.outcome import SweepOutcome, outcome
from taso_tune.tuning.paths import new_experiment_path
from taso_tune.tuning.preflight import Writes, disconnect
from taso_tune.tuning.prepare import prepare
from taso_tune.tuning.rerun import plan_rerun, run_rerun
from taso_tune.tuning.resources import keep_resources, save_resources
from taso_tune.tuning.shipping import space_callables, user_modules
from taso_tune.tuning.space_file import write_space_file
from taso_tune.tuning.trials import trial_source
from taso_tune.tuning.tuner import build_tuner

__all__ = ["SweepInterrupted", "SweepOutcome", "disconnect", "resume_sweep", "run_sweep"]

#: What a sweep writes before Tune does: a folder holding only these started nothing.
_OWN_FILES = (
    LOCK_FILE,
    SPACE_FILE,
    HPARAMS_FILE,
    RESOURCES_FILE,
    BUDGET_SH_FILE,
    INTERRUPTED_FILE,
)


def run_sweep(
    spec: SweepSpec, storage: str, *, name: str | None = None, address: str | None = None
) -> SweepOutcome:
    """Run the sweep to the end (or until SIGINT/SIGTERM) and return where its results are.

    Refuses storage it cannot write, and an existing experiment folder (resume it instead), before
    anything is started; a sweep that fails before its first trial leaves no folder behind. The
    experiment is ``STORAGE/NAME``, ``name`` defaulting to the space's.
    """
    path = new_experiment_path(storage, name or spec.name, name_given=name is not None)
    name = name or spec.name
    if spec.scheduler.type == "budget-sh":
        return _run_with_lock_and_signals(
            path,
            "sweep",
            spec,
            True,
            lambda: budget_sh.run_budget_sh(spec, storage, name=name, address=address),
        )

    def body() -> SweepOutcome:
        start = time.perf_counter()
        source = trial_source(spec)
        datasets = prepare(source, storage, address, writes=Writes.sweep(source))
        write_space_file(path, spec)
        write_experiment_summary(path, spec)
        save_resources(path, source)
        tuner = build_tuner(source, datasets, storage, name)
        return outcome(path, tuner.fit(), start)

    return _run_with_lock_and_signals(path, "sweep", spec, True, body)


def resume_sweep(
    experiment: str,
    *,
    address: str | None = None,
    allow_device_change: bool = False,
    rerun_lost: bool = False,
) -> SweepOutcome:
    """Continue an interrupted sweep: finished trials stay finished, unfinished ones continue from
    their last checkpoints, errored ones are retried from theirs. A sweep whose trials all finished
    says so and starts nothing. What is still to write must fit in the storage
    (:func:`~taso_tune.tuning.preflight.check_free_space`).

    Where the experiment's Ray Tune state cannot be read and no good copy is left, ``rerun_lost``
    keeps the finished trials and trains the lost ones again (:mod:`~taso_tune.tuning.rerun`);
    without it that is a :class:`ConfigError` naming the lost trials and the flag. ``rerun_lost``
    on an experiment that lost nothing is refused.

    Trials keep the CPUs, GPUs and device the sweep started with; on a cluster that would run them on
    another device kind it stops, unless ``allow_device_change``
    (:func:`~taso_tune.tuning.resources.keep_resources`).

    Resuming unpickles the folder's Ray Tune state, which can run code: a local folder that is not
    yours alone is refused (:func:`~taso_tune.experiment.trust.check_trusted_folder`).
    """
    path = resolve(experiment)
    check_trusted_folder(path)
    spec = read_space(path)
    storage, name = posixpath.split(path.rstrip("/"))
    modules = user_modules(space_callables(spec))
    if modules:  # the saved space names them: say so before anything imports them
        print(
            f"{path}: its space names your code; resuming imports {', '.join(modules)}", flush=True
        )

    def body() -> SweepOutcome:
        recovery = recover_state(path, rerun_lost=rerun_lost)
        for note in recovery.notes:
            print(note, flush=True)
        record = ExperimentReader(path).rerun
        if rerun_lost and recovery.lost is None and record is None and not recovery.notes:
            raise ConfigError(
                "--rerun-lost",
                path,
                "nothing is lost: every Ray Tune state of the experiment can be read; resume "
                "without --rerun-lost",
            )
        if recovery.lost is not None:  # the sweep's own run: a budget-sh sweep's are its rungs'
            record = plan_rerun(path, spec, recovery.lost)
            if not record.trials:
                set_aside(path, record)
            else:
                kept = keep_resources(path, spec, address, allow_device_change=allow_device_change)
                return run_rerun(path, kept, record, storage, address, new=True)
        statuses = trial_statuses(path, strict=True) or []
        if all_finished(path, spec, experiment_planned(path, spec)):
            print(f"{path}: all {len(statuses)} trials finished; nothing to resume", flush=True)
            return SweepOutcome(path, len(statuses), statuses.count("ERROR"), 0.0)
        if spec.scheduler.type == "budget-sh":
            kept = keep_resources(path, spec, address, allow_device_change=allow_device_change)
            return budget_sh.resume_budget_sh(path, kept, storage, address=address)
        if record is not None:
            kept = keep_resources(path, spec, address, allow_device_change=allow_device_change)
            return run_rerun(path, kept, record, storage, address)
        if not tune.Tuner.can_restore(path):
            raise ConfigError("experiment", experiment, "has no Ray Tune state to resume from")
        kept = keep_resources(path, spec, address, allow_device_change=allow_device_change)
        start = time.perf_counter()
        source = trial_source(kept)
        left = planned_trials(kept) - finished_trials(path)
        writes = Writes(((max(left, 0), kept.epochs),), "resume")
        datasets = prepare(source, storage, address, writes=writes, experiment=path)
        ensure_experiment_summary(path, kept)
        tuner = build_tuner(source, datasets, storage, name, restore=True)
        return outcome(path, tuner.fit(), start)

    return _run_with_lock_and_signals(path, "resume", spec, False, body)


def _run_with_lock_and_signals(
    path: str, command: str, spec: SweepSpec, new: bool, body: Callable[[], SweepOutcome]
) -> SweepOutcome:
    """Run ``body`` holding the experiment's lock and handling SIGINT/SIGTERM.

    Interrupted after Tune saved state: the experiment is marked partial and the outcome says which
    signal stopped it. Interrupted or failed before that: a new sweep's folder is removed, and the
    error (or :class:`SweepInterrupted`) goes on to the caller.
    """
    planned, start = planned_trials(spec), time.perf_counter()
    lock = ExperimentLock(path, command)
    # what the sweep writes is not writable by group or others (umask 022 at least): resume
    # unpickles the Ray Tune state saved here, and refuses a folder that others could have changed
    umask = os.umask(0o022)
    os.umask(umask | 0o022)
    SIGNALS.install()
    STORAGE.install()
    started_nothing = False
    try:
        lock.acquire()
        try:
            result = body()
            if SIGNALS.received is not None:  # a run saved before StopAfterSignal existed returns
                result = dataclasses.replace(result, interrupted=SIGNALS.received)
        except StorageInterrupted as err:
            started_nothing = trial_statuses(path) is None
            result = _stopped_by_storage(path, err.fault, start)
        except KeyboardInterrupt as err:  # SweepInterrupted, or a signal outside Tune's loop
            signum = getattr(err, "signum", None) or SIGNALS.received or signal.SIGINT
            if trial_statuses(path) is None:
                started_nothing = True
                raise SweepInterrupted(signum) from None
            result = SweepOutcome(
                path,
                len(trial_statuses(path) or []),
                0,
                time.perf_counter() - start,
                interrupted=signum,
            )
        except BaseException as err:
            started_nothing = trial_statuses(path) is None
            full = storage_full(err)
            if full is None:
                raise
            result = _stopped_by_storage(path, first_line(full), start)
        if not new:  # a rerun of lost trials plans its own count
            planned = experiment_planned(path, spec)
        result = dataclasses.replace(result, planned=planned, finished=finished_trials(path))
        _mark_partial(path, result)
        return result
    finally:
        try:
            lock.release()
        except OSError as err:  # a read-only storage keeps it; the next driver finds it stale
            if storage_full(err) is None:
                raise
        SIGNALS.uninstall()
        STORAGE.uninstall()
        os.umask(umask)
        if new and started_nothing and remove_if_only(path, _OWN_FILES):
            lock.remove_created()


def _stopped_by_storage(path: str, fault: str, start: float) -> SweepOutcome:
    """The outcome of a sweep that a storage taking no more writes stopped."""
    statuses = trial_statuses(path) or []
    return SweepOutcome(path, len(statuses), 0, time.perf_counter() - start, storage_fault=fault)


def _mark_partial(path: str, result: SweepOutcome) -> None:
    """Leave the flag of a stopped sweep, or take it away once a sweep ran to the end. On a storage
    that takes no writes the flag cannot be written: the driver's last line says what it would."""
    try:
        if result.storage_fault is not None:
            write_interrupted(path, "a full or read-only storage", result.planned, result.finished)
        elif result.interrupted is not None:
            write_interrupted(path, result.interrupted, result.planned, result.finished)
        else:
            delete_experiment_file(path, INTERRUPTED_FILE)
    except OSError as err:
        if storage_full(err) is None:
            raise
