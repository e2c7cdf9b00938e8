"""Run, and resume, a sweep described by a :class:`~taso_tune.spaces.SweepSpec` on Ray Tune.

The runner validates everything and loads the data before it starts anything: the data sets are
loaded once in the driver and shared with every trial through Ray's object store
(``tune.with_parameters``). Results go to ``STORAGE/NAME`` (a local path, an NFS mount or a cloud
URI), with the resolved space file written beside them so ``taso-tune resume`` can rebuild the sweep.
"""

from __future__ import annotations

import os
import posixpath
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ray
import yaml
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from taso_tune.data import ImageData, load_dataset
from taso_tune.errors import ConfigError
from taso_tune.layout import SPACE_FILE
from taso_tune.spaces import DEFAULT_GPUS_PER_TRIAL, SweepSpec, load_space_dict
from taso_tune.storage import exists, read_experiment_file, resolve, write_experiment_file
from taso_tune.tuning.cluster_check import require_shared_storage
from taso_tune.tuning.trainable import DataKey, data_key, train_trial, trial_flat_config

METRIC_COLUMNS = {"epoch": "epoch", "lr": "lr", "train_loss": "train_loss", "val_acc": "val_acc", "test_acc": "test_acc"}


@dataclass(frozen=True)
class SweepOutcome:
    """Where a finished sweep is and how it went."""

    experiment_path: str
    trials: int
    errored: int
    wall_seconds: float


def experiment_path(storage: str, name: str) -> str:
    """``STORAGE/NAME`` for local paths and URIs alike (local paths made absolute): where Ray Tune
    writes the run of ``name`` under ``storage_path=resolve(storage)``."""
    return posixpath.join(resolve(storage), name)


def read_space_file(experiment: str) -> SweepSpec:
    """The resolved space written beside an experiment's results."""
    text = read_experiment_file(experiment, SPACE_FILE)
    if text is None:
        raise ConfigError("experiment", experiment, f"not a taso-tune experiment folder (no {SPACE_FILE})")
    return load_space_dict(yaml.safe_load(text), source=experiment)


def write_space_file(experiment: str, spec: SweepSpec) -> None:
    """Write the resolved space beside the results, atomically."""
    write_experiment_file(experiment, SPACE_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False))


def new_experiment_path(storage: str, name: str) -> str:
    """``STORAGE/NAME`` for a new sweep; refuses an existing folder before anything starts."""
    path = experiment_path(storage, name)
    if exists(path):
        raise ConfigError("--name", name, f"experiment folder {path} already exists; resume it with "
                          f"`taso-tune resume {path}` or choose another --name")  # fmt: skip
    return path


def _data_keys(spec: SweepSpec) -> set[DataKey]:
    if spec.search.type == "optuna":
        sources = [{**spec.train, **{k: v for k, v in b.items() if not isinstance(v, Mapping)}} for b in spec.blocks]
    else:
        sources = spec.configurations()
    return {data_key(flat) for flat in sources}


def load_sweep_data(spec: SweepSpec) -> dict[DataKey, ImageData]:
    """Load every data set the sweep trains on, once (fails before anything starts)."""
    download = bool(spec.train.get("download", False))
    datasets = {}
    for key in sorted(_data_keys(spec), key=str):
        name, root, val_fraction, train_limit = key
        try:
            datasets[key] = load_dataset(
                name, root, download=download, val_fraction=val_fraction, train_limit=train_limit
            )
        except ConfigError as err:
            raise err.in_file(spec.source or "space", "train") from None
    return datasets


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, include_dashboard=None, log_to_driver=True, configure_logging=True,
             logging_level="WARNING")  # fmt: skip


def alive_nodes() -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def _trial_resources(spec: SweepSpec) -> dict[str, float]:
    gpus = spec.resources.gpus
    if gpus is None:
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        models = {flat.get("model") for flat in ([spec.train] if spec.search.type == "optuna" else spec.configurations())}
        gpus = max(DEFAULT_GPUS_PER_TRIAL.get(m, 1.0) for m in models) if has_gpu else 0.0
    return {"cpu": spec.resources.cpus, "gpu": gpus}


def _scheduler(spec: SweepSpec):
    kind = spec.scheduler.type
    if kind == "asha":
        return ASHAScheduler(
            time_attr="epoch",
            max_t=spec.epochs,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
            brackets=1,
        )
    if kind == "none":
        return FIFOScheduler()
    raise ConfigError("scheduler.type", kind, "is run by the budget-sh runner, not by one Tuner")


def _param_space(spec: SweepSpec) -> dict[str, Any] | None:
    """Grid and random spaces: every trial (configuration x seed) as one grid; Optuna: none (its
    searcher suggests the configurations)."""
    return None if spec.search.type == "optuna" else {"trial": tune.grid_search(spec.trials())}


def _search_alg(spec: SweepSpec) -> tuple[Any, int]:
    """(search_alg, num_samples): Optuna's searcher with each suggestion repeated once per seed, or
    none for a grid (the param space holds every trial)."""
    if spec.search.type != "optuna":
        return None, 1
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space=spec.optuna_space(), metric=spec.metric, mode=spec.mode, seed=spec.search.seed)
    if spec.seeds > 1:
        searcher = Repeater(searcher, repeat=spec.seeds, set_index=True)
    return searcher, spec.search.num_samples * spec.seeds


def build_trainable(spec: SweepSpec, datasets: Mapping[DataKey, ImageData], name: str):
    """``train_trial`` with the data in the object store and the trial's resources attached."""
    resources = _trial_resources(spec)
    resolve = spec.resolve_optuna_params if spec.search.type == "optuna" else None
    fn = tune.with_parameters(
        train_trial,
        datasets=dict(datasets),
        experiment=name,
        checkpoint_every=spec.checkpoint_every,
        cpus=resources["cpu"],
        device="cuda" if resources["gpu"] > 0 else "cpu",
        resolve_optuna=resolve,
    )
    return tune.with_resources(fn, resources)


def _trial_namer(spec: SweepSpec):
    resolve = spec.resolve_optuna_params if spec.search.type == "optuna" else None

    def name(trial) -> str:
        flat = trial_flat_config(trial.config, resolve)
        return f"{flat.get('config_id', 'trial')}_s{flat.get('seed', 0)}"

    def dirname(trial) -> str:
        return f"{name(trial)}_{trial.trial_id}"

    return name, dirname


def run_config(spec: SweepSpec, name: str, storage: str) -> tune.RunConfig:
    """Where results go, failure retries, checkpoints kept, and the progress table."""
    from ray.tune import CLIReporter

    reporter = CLIReporter(
        metric_columns=METRIC_COLUMNS,
        parameter_columns={"trial/optimizer": "optimizer"} if spec.search.type != "optuna" else None,
        max_report_frequency=15,
        sort_by_metric=True,
        max_progress_rows=12,
    )
    return tune.RunConfig(
        name=name,
        storage_path=resolve(storage),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        progress_reporter=reporter,
        verbose=1,
    )


def tune_config(spec: SweepSpec) -> tune.TuneConfig:
    """Metric, scheduler, searcher, concurrency and readable trial names of the sweep."""
    search_alg, num_samples = _search_alg(spec)
    namer, dirnamer = _trial_namer(spec)
    return tune.TuneConfig(
        metric=spec.metric,
        mode=spec.mode,
        scheduler=_scheduler(spec),
        search_alg=search_alg,
        num_samples=num_samples,
        max_concurrent_trials=spec.max_concurrent,
        reuse_actors=True,
        trial_name_creator=namer,
        trial_dirname_creator=dirnamer,
    )


def prepare(spec: SweepSpec, storage: str, address: str | None) -> dict[DataKey, ImageData]:
    """Load the data (failing before anything starts), connect to Ray, and check the storage."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress table with our columns
    # checkpointing every epoch of short epochs makes Tune warn about frequent experiment snapshots
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    datasets = load_sweep_data(spec)
    connect(address)
    nodes = alive_nodes()
    require_shared_storage(storage, nodes)
    if nodes == 1 and (address or os.environ.get("RAY_ADDRESS")) and "://" not in storage:
        print(f"warning: {storage} is a node-local path; if this cluster adds worker nodes, their trials "
              "cannot write there: use shared storage (a bucket URI or an NFS mount)", file=sys.stderr)  # fmt: skip
    return datasets


def _outcome(path: str, results: tune.ResultGrid, start: float) -> SweepOutcome:
    return SweepOutcome(path, len(results), results.num_errors, time.perf_counter() - start)


def run_sweep(spec: SweepSpec, storage: str, *, name: str | None = None, address: str | None = None) -> SweepOutcome:
    """Run the sweep to the end and return where its results are.

    Refuses an existing experiment folder (resume it instead) before anything is started.
    """
    if spec.scheduler.type == "budget-sh":
        from taso_tune.tuning.budget_sh import run_budget_sh

        return run_budget_sh(spec, storage, name=name, address=address)
    name = name or spec.name
    path = new_experiment_path(storage, name)
    start = time.perf_counter()
    datasets = prepare(spec, storage, address)
    write_space_file(path, spec)
    tuner = tune.Tuner(
        build_trainable(spec, datasets, name),
        param_space=_param_space(spec),
        tune_config=tune_config(spec),
        run_config=run_config(spec, name, storage),
    )
    return _outcome(path, tuner.fit(), start)


def resume_sweep(experiment: str, *, address: str | None = None) -> SweepOutcome:
    """Continue an interrupted sweep: finished trials stay finished, unfinished ones continue from
    their last checkpoints, errored ones are retried from theirs."""
    spec = read_space_file(experiment)
    path = resolve(experiment)
    storage, name = posixpath.split(path.rstrip("/"))
    if spec.scheduler.type == "budget-sh":
        from taso_tune.tuning.budget_sh import resume_budget_sh

        return resume_budget_sh(path, spec, storage, address=address)
    if not tune.Tuner.can_restore(path):
        raise ConfigError("experiment", experiment, "has no Ray Tune state to resume from")
    start = time.perf_counter()
    datasets = prepare(spec, storage, address)
    tuner = tune.Tuner.restore(
        path,
        build_trainable(spec, datasets, name),
        resume_unfinished=True,
        resume_errored=True,
        param_space=_param_space(spec),
    )
    return _outcome(path, tuner.fit(), start)
