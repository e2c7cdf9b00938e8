"""The TuneConfig and RunConfig of a sweep: metric, scheduler, searcher, concurrency and trial
names; where results go, failure retries, checkpoints kept, the progress table and lines, and the
callbacks (a clean stop on SIGINT/SIGTERM, TensorBoard's HParams, progress lines)."""

from __future__ import annotations

from ray import tune

from taso_tune.core.storage import resolve, tune_filesystem
from taso_tune.experiment.layout import rung_index
from taso_tune.tuning.interrupts import StopAfterSignal
from taso_tune.tuning.observe.progress import ProgressCallback, StatusTable, SweepProgress
from taso_tune.tuning.observe.tensorboard import HParamsLogger
from taso_tune.tuning.preflight import CHECKPOINTS_KEPT
from taso_tune.tuning.schedulers import build_scheduler
from taso_tune.tuning.trial_names import trial_namers
from taso_tune.tuning.trials import TrialSource

#: Epoch fields shown in Ray's progress table.
PROGRESS_COLUMNS = ("epoch", "lr", "train_loss", "val_acc", "test_acc")


def run_config(source: TrialSource, name: str, storage: str) -> tune.RunConfig:
    """Where results go, failure retries, checkpoints kept, the progress table and lines, and the
    TensorBoard files (``name``: the experiment's, or a budget-sh rung's)."""
    reporter = StatusTable(
        metric_columns=list(PROGRESS_COLUMNS),
        parameter_columns=source.parameter_columns,
        max_report_frequency=15,
        sort_by_metric=True,
        max_progress_rows=12,
        # explicit: Ray's default reads the verbosity a previous sweep of the process left behind
        print_intermediate_tables=True,
    )
    spec = source.spec
    return tune.RunConfig(
        name=name,
        storage_path=resolve(storage),
        storage_filesystem=tune_filesystem(storage),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        progress_reporter=reporter,
        callbacks=[
            StopAfterSignal(),
            # a budget-sh rung's trials keep their rung in TensorBoard's Trial ID
            HParamsLogger(f"{name}/" if rung_index(name) is not None else ""),
            ProgressCallback(SweepProgress(source.planned_trials(), spec.epochs, spec.metric)),
        ],
        verbose=1,
    )


def tune_config(source: TrialSource, reuse_actors: bool) -> tune.TuneConfig:
    """Metric, scheduler, searcher, concurrency, actor reuse (:mod:`~taso_tune.tuning.actors`)
    and readable trial names of the sweep."""
    spec = source.spec
    search_alg, num_samples = source.search_alg()
    namer, dirnamer = trial_namers(source)
    return tune.TuneConfig(
        metric=spec.metric,
        mode=spec.mode,
        scheduler=build_scheduler(spec, source.planned_trials()),
        search_alg=search_alg,
        num_samples=num_samples,
        max_concurrent_trials=spec.max_concurrent,
        reuse_actors=reuse_actors,
        trial_name_creator=namer,
        trial_dirname_creator=dirnamer,
    )
