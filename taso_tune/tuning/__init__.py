"""The Ray layer: the only package of taso-tune, with ``cluster``, that imports ``ray``.

:func:`run_sweep` and :func:`resume_sweep` dispatch on the space's scheduler: one Tuner run
(ASHA or no early stopping, :mod:`~taso_tune.tuning.tuner`) or budget-aware successive halving
(a Tuner run per rung, :mod:`~taso_tune.tuning.budget_sh`). The rooms: ``trials`` (grid or Optuna
trials, the one seam over the search type), ``schedulers``, ``trainable`` (one trial on a worker),
``live_metrics`` (Prometheus gauges), ``tuner`` (what every run shares).
"""

from __future__ import annotations

import posixpath
import time

from ray import tune

from taso_tune.errors import ConfigError
from taso_tune.spaces import SweepSpec
from taso_tune.storage import resolve
from taso_tune.tuning import budget_sh
from taso_tune.tuning.trials import trial_source
from taso_tune.tuning.tuner import (
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

__all__ = ["SweepOutcome", "resume_sweep", "run_sweep"]


def run_sweep(spec: SweepSpec, storage: str, *, name: str | None = None, address: str | None = None) -> SweepOutcome:
    """Run the sweep to the end and return where its results are.

    Refuses an existing experiment folder (resume it instead) before anything is started.
    """
    if spec.scheduler.type == "budget-sh":
        return budget_sh.run_budget_sh(spec, storage, name=name, address=address)
    name = name or spec.name
    path = new_experiment_path(storage, name)
    start = time.perf_counter()
    source = trial_source(spec)
    datasets = prepare(source, storage, address)
    write_space_file(path, spec)
    tuner = tune.Tuner(
        build_trainable(source, datasets, name),
        param_space=source.param_space(),
        tune_config=tune_config(source),
        run_config=run_config(source, name, storage),
    )
    return outcome(path, tuner.fit(), start)


def resume_sweep(experiment: str, *, address: str | None = None) -> SweepOutcome:
    """Continue an interrupted sweep: finished trials stay finished, unfinished ones continue from
    their last checkpoints, errored ones are retried from theirs."""
    spec = read_space_file(experiment)
    path = resolve(experiment)
    storage, name = posixpath.split(path.rstrip("/"))
    if spec.scheduler.type == "budget-sh":
        return budget_sh.resume_budget_sh(path, spec, storage, address=address)
    if not tune.Tuner.can_restore(path):
        raise ConfigError("experiment", experiment, "has no Ray Tune state to resume from")
    start = time.perf_counter()
    source = trial_source(spec)
    datasets = prepare(source, storage, address)
    tuner = tune.Tuner.restore(
        path,
        build_trainable(source, datasets, name),
        resume_unfinished=True,
        resume_errored=True,
        param_space=source.param_space(),
    )
    return outcome(path, tuner.fit(), start)
