"""What the driver does before a sweep's first trial: the environment Tune reads, the data loaded
(failing before anything starts), Ray connected, the trial's resources and the storage checked
against the cluster."""

from __future__ import annotations

import logging
import os
import sys

from taso_tune.core.storage import is_uri, require_shared_storage
from taso_tune.training.data.sets import ImageData
from taso_tune.tuning.data import check_models, load_sweep_data, model_and_data_names
from taso_tune.tuning.interrupts import SIGNALS
from taso_tune.tuning.preflight import (
    Writes,
    check_free_space,
    check_trial_fits,
    cluster_address,
    connect,
)
from taso_tune.tuning.resources import alive_nodes, trial_resources
from taso_tune.tuning.shipping import runtime_env
from taso_tune.tuning.trainable import DataKey
from taso_tune.tuning.trials import TrialSource

#: The logger of Ray Tune's result grid.
TUNE_ANALYSIS_LOGGER = "ray.tune.analysis.experiment_analysis"


def prepare(
    source: TrialSource,
    storage: str,
    address: str | None,
    *,
    writes: Writes | None = None,
    experiment: str | None = None,
) -> dict[DataKey, ImageData]:
    """Load the data (failing before anything starts), check that what the sweep or the resume of
    ``experiment`` still ``writes`` fits in its storage (:func:`check_free_space`; ``None``: no
    check), connect to Ray, and check the storage."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress table with our columns
    # checkpointing every epoch of short epochs makes Tune warn about frequent experiment snapshots
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # a trial stopped before its first report has no result file yet, and Tune's result grid warns
    # that it "failed to fetch metrics" of it at the sweep's end; the summary already counts such a
    # trial's seeds as unfinished, and the results are read from the trials' folders, not that grid
    logging.getLogger(TUNE_ANALYSIS_LOGGER).setLevel(logging.ERROR)
    datasets = load_sweep_data(source)
    check_models(source, datasets)
    if writes is not None:
        check_free_space(source, datasets, storage, writes, experiment)
    connect(address, runtime_env(model_and_data_names(source)))
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
