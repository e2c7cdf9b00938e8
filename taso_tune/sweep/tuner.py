"""The Tuner plumbing every sweep shares (one run, a budget-sh rung, a resume).

The data sets are loaded once in the driver, before anything starts, and shared with every trial
through Ray's object store (``tune.with_parameters``). Results go to ``STORAGE/NAME`` (a local path,
an NFS mount or a cloud URI), with the resolved space file written beside them so ``taso-tune
resume`` can rebuild the sweep.
"""

from __future__ import annotations

import os
import posixpath
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

import yaml
from ray import tune

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import SPACE_FILE
from taso_tune.core.storage import (
    check_writable,
    exists,
    is_uri,
    read_experiment_file,
    require_shared_storage,
    resolve,
    write_experiment_file,
)
from taso_tune.experiment.lock import lock_holder, only_own_lock
from taso_tune.spaces import SweepSpec, load_space_dict
from taso_tune.sweep.interrupts import SIGNALS, StopAfterSignal
from taso_tune.sweep.observe.progress import ProgressCallback, SweepProgress
from taso_tune.sweep.observe.tensorboard import HParamsLogger
from taso_tune.sweep.preflight import check_trial_fits, cluster_address, connect
from taso_tune.sweep.resources import alive_nodes, trial_resources
from taso_tune.sweep.schedulers import build_scheduler
from taso_tune.sweep.trainable import DataKey, TrialActor, data_key
from taso_tune.sweep.trials import TrialSource
from taso_tune.training.data.sets import ImageData, check_batch_size, load_dataset
from taso_tune.training.run import TrainConfig

#: Epoch fields shown in Ray's progress table.
PROGRESS_COLUMNS = ("epoch", "lr", "train_loss", "val_acc", "test_acc")


@dataclass(frozen=True)
class SweepOutcome:
    """Where a sweep is and how it went: ``interrupted`` is the signal that stopped it (``None``:
    it ran to the end), ``planned`` the trials it was to run and ``finished`` those that did (0
    where not counted)."""

    experiment_path: str
    trials: int
    errored: int
    wall_seconds: float
    planned: int = 0
    interrupted: int | None = None
    finished: int = 0


def experiment_path(storage: str, name: str) -> str:
    """``STORAGE/NAME`` for local paths and URIs alike (local paths made absolute): where Ray Tune
    writes the run of ``name`` under ``storage_path=resolve(storage)``. ``name`` is one folder
    inside the storage: a name with a path separator, or ``.``/``..``, is refused."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(
            "--name", name, "must be one folder name inside the storage (no '/', not . or ..)"
        )
    return posixpath.join(resolve(storage).rstrip("/"), name)


def read_space_file(experiment: str) -> SweepSpec:
    """The resolved space written beside an experiment's results."""
    try:
        text = read_experiment_file(experiment, SPACE_FILE)
        data = None if text is None else yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(
            "experiment",
            experiment,
            f"its {SPACE_FILE} cannot be read ({type(err).__name__}): not a space taso-tune wrote",
        ) from None
    if text is None:
        raise ConfigError(
            "experiment", experiment, f"not a taso-tune experiment folder (no {SPACE_FILE})"
        )
    return load_space_dict(data, source=f"{experiment}/{SPACE_FILE}")


def write_space_file(experiment: str, spec: SweepSpec) -> None:
    """Write the resolved space beside the results, atomically."""
    write_experiment_file(experiment, SPACE_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False))


def new_experiment_path(storage: str, name: str) -> str:
    """``STORAGE/NAME`` for a new sweep; refuses, before anything starts, storage that cannot be
    written (see :func:`~taso_tune.core.storage.check_writable`) and an existing folder."""
    path = experiment_path(storage, name)
    check_writable(storage, "--storage", "folder")
    if exists(path) and not only_own_lock(path):
        holder = lock_holder(path)
        if holder is not None:
            raise ConfigError(
                "--name",
                name,
                f"experiment folder {path} is in use by {holder.describe()}; choose another --name",
            )
        raise ConfigError(
            "--name",
            name,
            f"experiment folder {path} already exists; resume it with "
            f"`taso-tune resume {path}` or choose another --name",
        )
    return path


def load_sweep_data(source: TrialSource) -> dict[DataKey, ImageData]:
    """Load every data set the sweep trains on, once, and check every configuration's batch size
    against its training set (fails before anything starts)."""
    spec = source.spec
    download = bool(spec.train.get("download", False))
    datasets = {}
    configs = source.fixed_configs()
    for key in sorted({data_key(flat) for flat in configs}, key=str):
        name, root, val_fraction, train_limit = key
        try:
            datasets[key] = load_dataset(
                name, root, download=download, val_fraction=val_fraction, train_limit=train_limit
            )
        except ConfigError as err:
            raise err.in_file(spec.source or "space", "train") from None
    for flat in configs:
        _check_batch_sizes(spec, flat, datasets[data_key(flat)])
    return datasets


def _check_batch_sizes(spec: SweepSpec, flat: Mapping, data: ImageData) -> None:
    """Every batch size ``flat`` may train with: its own, or (an Optuna block's configuration, which
    leaves varied fields out) each option of a block that varies it."""
    if "batch_size" in flat:
        sizes = {flat["batch_size"]}
    else:
        varied = [
            b["batch_size"] for b in spec.blocks if "batch_size" in b and b["batch_size"].varied
        ]
        sizes = {option for value in varied for option in value.options} or {TrainConfig.batch_size}
    block = flat.get("block")
    where = (
        f"blocks[{block}]" if block is not None and "batch_size" in spec.blocks[block] else "train"
    )
    for size in sorted(sizes):
        try:
            check_batch_size(size, data)
        except ConfigError as err:
            label = f" (configuration {flat['config_id']})" if "config_id" in flat else ""
            raise ConfigError(
                f"{where}.batch_size", size, err.problem + label, file=spec.source
            ) from None


def build_trainable(source: TrialSource, datasets: Mapping[DataKey, ImageData], name: str):
    """:class:`TrialActor` with the data in the object store and the trial's resources attached."""
    spec = source.spec
    resources = trial_resources(source)
    actor = tune.with_parameters(
        TrialActor,
        datasets=dict(datasets),
        experiment=name,
        checkpoint_every=spec.checkpoint_every,
        checkpoint_min_seconds=spec.checkpoint_min_seconds,
        seed_packing=spec.seed_packing,
        reuse_actors=spec.reuse_actors,
        cpus=resources["cpu"],
        device="cuda" if resources["gpu"] > 0 else "cpu",
        source=source,
    )
    trainable = tune.with_resources(actor, resources)
    # Ray names an actor's class by its qualified name; Tune's wrappers are local classes
    trainable.__qualname__ = trainable.__name__ = TrialActor.__name__
    return trainable


def _trial_namer(source: TrialSource):
    def name(trial) -> str:
        flat = source.flat_config(trial.config)
        seeds = flat["seeds"]
        suffix = f"_s{seeds[0]}" if source.spec.seeds_per_trial == 1 else ""
        return f"{flat.get('config_id', 'trial')}{suffix}"

    def dirname(trial) -> str:
        return f"{name(trial)}_{trial.trial_id}"

    return name, dirname


def run_config(source: TrialSource, name: str, storage: str) -> tune.RunConfig:
    """Where results go, failure retries, checkpoints kept, the progress table and lines, and the
    TensorBoard files."""
    from ray.tune import CLIReporter

    reporter = CLIReporter(
        metric_columns=list(PROGRESS_COLUMNS),
        parameter_columns=source.parameter_columns,
        max_report_frequency=15,
        sort_by_metric=True,
        max_progress_rows=12,
    )
    spec = source.spec
    return tune.RunConfig(
        name=name,
        storage_path=resolve(storage),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        progress_reporter=reporter,
        callbacks=[
            StopAfterSignal(),
            HParamsLogger(),
            ProgressCallback(SweepProgress(source.planned_trials(), spec.epochs, spec.metric)),
        ],
        verbose=1,
    )


def tune_config(source: TrialSource) -> tune.TuneConfig:
    """Metric, scheduler, searcher, concurrency and readable trial names of the sweep."""
    spec = source.spec
    search_alg, num_samples = source.search_alg()
    namer, dirnamer = _trial_namer(source)
    return tune.TuneConfig(
        metric=spec.metric,
        mode=spec.mode,
        scheduler=build_scheduler(spec),
        search_alg=search_alg,
        num_samples=num_samples,
        max_concurrent_trials=spec.max_concurrent,
        # an actor's name in the dashboard is fixed when it starts: by default one actor per trial
        reuse_actors=spec.reuse_actors,
        trial_name_creator=namer,
        trial_dirname_creator=dirnamer,
    )


def prepare(source: TrialSource, storage: str, address: str | None) -> dict[DataKey, ImageData]:
    """Load the data (failing before anything starts), connect to Ray, and check the storage."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress table with our columns
    # checkpointing every epoch of short epochs makes Tune warn about frequent experiment snapshots
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    datasets = load_sweep_data(source)
    connect(address)
    SIGNALS.install()  # after ray.init, which puts in its own SIGTERM handler
    check_trial_fits(trial_resources(source), cluster_address(address))
    nodes = alive_nodes()
    require_shared_storage(storage, nodes)
    if nodes == 1 and cluster_address(address) and not is_uri(storage):
        print(
            f"warning: {storage} is a node-local path; if this cluster adds worker nodes, their trials "
            "cannot write there: use shared storage (a bucket URI or an NFS mount)",
            file=sys.stderr,
        )
    return datasets


def outcome(path: str, results: tune.ResultGrid, start: float, planned: int = 0) -> SweepOutcome:
    return SweepOutcome(
        path, len(results), results.num_errors, time.perf_counter() - start, planned
    )
