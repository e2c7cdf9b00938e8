"""The Ray layer: the only package of taso-tune, with ``cluster``, that imports ``ray``.

:func:`run_sweep` and :func:`resume_sweep` dispatch on the space's scheduler: one Tuner run
(ASHA or no early stopping, :mod:`~taso_tune.sweep.tuner`) or budget-aware successive halving
(a Tuner run per rung, :mod:`~taso_tune.sweep.budget_sh`). Either way the driver holds the
experiment's lock (:mod:`~taso_tune.experiment.lock`) and turns SIGINT/SIGTERM into a clean stop
(:mod:`~taso_tune.sweep.interrupts`). The rooms: ``trials`` (grid or Optuna trials, the one seam over
the search type), ``schedulers``, ``trainable`` (one trial on a worker), ``live_metrics`` (Prometheus
gauges), ``tuner`` (what every run shares), ``preflight`` (cluster checks), ``state`` (progress read
from Tune's saved state), ``trust`` (which folders resume may unpickle).
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
    INTERRUPTED_FILE,
    LOCK_FILE,
    RESOURCES_FILE,
    SPACE_FILE,
)
from taso_tune.core.storage import delete_experiment_file, first_line, remove_if_only, resolve
from taso_tune.experiment.lock import ExperimentLock
from taso_tune.experiment.state import (
    all_finished,
    finished_trials,
    planned_trials,
    trial_statuses,
    write_interrupted,
)
from taso_tune.experiment.trust import check_trusted_folder
from taso_tune.spaces import SweepSpec
from taso_tune.sweep import budget_sh
from taso_tune.sweep.interrupts import SIGNALS, SweepInterrupted
from taso_tune.sweep.preflight import disconnect
from taso_tune.sweep.resources import keep_resources, save_resources
from taso_tune.sweep.trials import trial_source
from taso_tune.sweep.tuner import (
    SweepOutcome,
    build_trainable,
    new_experiment_path,
    outcome,
    prepare,
    read_space_file,
    run_config,
    tune_config,
    write_space_file,
)

__all__ = ["SweepInterrupted", "SweepOutcome", "disconnect", "resume_sweep", "run_sweep"]

#: What a sweep writes before Tune does: a folder holding only these started nothing.
_OWN_FILES = (LOCK_FILE, SPACE_FILE, RESOURCES_FILE, BUDGET_SH_FILE, INTERRUPTED_FILE)


def run_sweep(
    spec: SweepSpec, storage: str, *, name: str | None = None, address: str | None = None
) -> SweepOutcome:
    """Run the sweep to the end (or until SIGINT/SIGTERM) and return where its results are.

    Refuses storage it cannot write, and an existing experiment folder (resume it instead), before
    anything is started; a sweep that fails before its first trial leaves no folder behind.
    """
    name = name or spec.name
    path = new_experiment_path(storage, name)
    if spec.scheduler.type == "budget-sh":
        return _drive(
            path,
            "sweep",
            spec,
            True,
            lambda: budget_sh.run_budget_sh(spec, storage, name=name, address=address),
        )

    def body() -> SweepOutcome:
        start = time.perf_counter()
        source = trial_source(spec)
        datasets = prepare(source, storage, address)
        write_space_file(path, spec)
        save_resources(path, source)
        tuner = tune.Tuner(
            build_trainable(source, datasets, name),
            param_space=source.param_space(),
            tune_config=tune_config(source),
            run_config=run_config(source, name, storage),
        )
        return outcome(path, tuner.fit(), start)

    return _drive(path, "sweep", spec, True, body)


def resume_sweep(
    experiment: str, *, address: str | None = None, allow_device_change: bool = False
) -> SweepOutcome:
    """Continue an interrupted sweep: finished trials stay finished, unfinished ones continue from
    their last checkpoints, errored ones are retried from theirs. A sweep whose trials all finished
    says so and starts nothing.

    Trials keep the CPUs, GPUs and device the sweep started with; on a cluster that would run them on
    another device kind it stops, unless ``allow_device_change``
    (:func:`~taso_tune.sweep.resources.keep_resources`).

    Resuming unpickles the folder's Ray Tune state, which can run code: a local folder that is not
    yours alone is refused (:func:`~taso_tune.experiment.trust.check_trusted_folder`).
    """
    path = resolve(experiment)
    check_trusted_folder(path)
    spec = read_space_file(path)
    storage, name = posixpath.split(path.rstrip("/"))

    def body() -> SweepOutcome:
        statuses = trial_statuses(path, strict=True) or []
        if all_finished(path, spec, planned_trials(spec)):
            print(f"{path}: all {len(statuses)} trials finished; nothing to resume", flush=True)
            return SweepOutcome(path, len(statuses), statuses.count("ERROR"), 0.0)
        if spec.scheduler.type == "budget-sh":
            kept = keep_resources(path, spec, address, allow_device_change=allow_device_change)
            return budget_sh.resume_budget_sh(path, kept, storage, address=address)
        if not tune.Tuner.can_restore(path):
            raise ConfigError("experiment", experiment, "has no Ray Tune state to resume from")
        kept = keep_resources(path, spec, address, allow_device_change=allow_device_change)
        start = time.perf_counter()
        source = trial_source(kept)
        datasets = prepare(source, storage, address)
        trainable = build_trainable(source, datasets, name)
        try:
            tuner = tune.Tuner.restore(
                path,
                trainable,
                resume_unfinished=True,
                resume_errored=True,
                param_space=source.param_space(),
            )
        except (
            Exception
        ) as err:  # a truncated or foreign tuner.pkl: nothing of the sweep has run yet
            raise ConfigError(
                "experiment",
                experiment,
                f"Ray Tune cannot restore it: {type(err).__name__}: {first_line(err)}",
            ) from None
        return outcome(path, tuner.fit(), start)

    return _drive(path, "resume", spec, False, body)


def _drive(
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
    started_nothing = False
    try:
        lock.acquire()
        try:
            result = body()
            if SIGNALS.received is not None:  # a run saved before StopAfterSignal existed returns
                result = dataclasses.replace(result, interrupted=SIGNALS.received)
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
        except BaseException:
            started_nothing = trial_statuses(path) is None
            raise
        result = dataclasses.replace(result, planned=planned, finished=finished_trials(path))
        if result.interrupted is not None:
            write_interrupted(path, result.interrupted, planned, result.finished)
        else:
            delete_experiment_file(path, INTERRUPTED_FILE)
        return result
    finally:
        lock.release()
        SIGNALS.uninstall()
        os.umask(umask)
        if new and started_nothing and remove_if_only(path, _OWN_FILES):
            lock.remove_created()
