"""The data sets of a sweep, loaded once in the driver before anything starts.

Every configuration's batch size is checked against its training set here, so a batch larger than
the data fails with one line naming the field instead of in every trial. The loaded sets reach the
trials through Ray's object store (see :func:`~taso_tune.sweep.tuner.build_trainable`).
"""

from __future__ import annotations

from collections.abc import Mapping

from taso_tune.core.errors import ConfigError
from taso_tune.spaces import SweepSpec
from taso_tune.sweep.trainable import DataKey, data_key
from taso_tune.sweep.trials import TrialSource
from taso_tune.training.data.sets import ImageData, check_batch_size, load_dataset
from taso_tune.training.run import TrainConfig


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
