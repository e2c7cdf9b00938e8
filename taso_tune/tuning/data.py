"""The data sets of a sweep, loaded once in the driver before anything starts.

Every configuration's batch size is checked against its training set here, so a batch larger than
the data fails with one line naming the field instead of in every trial. The loaded sets reach the
trials through Ray's object store (see :func:`~taso_tune.tuning.tuner.build_trainable`).
"""

from __future__ import annotations

from collections.abc import Mapping

from taso_tune.core.errors import ConfigError
from taso_tune.spaces import SweepSpec
from taso_tune.training.data.sets import ImageData, check_batch_size, load_dataset
from taso_tune.training.models import MODELS, check_model
from taso_tune.training.run import TrainConfig
from taso_tune.training.stacked import check_stackable
from taso_tune.tuning.trainable import DataKey, data_key
from taso_tune.tuning.trials import TrialSource


def load_sweep_data(source: TrialSource) -> dict[DataKey, ImageData]:
    """Load every data set the sweep trains on, once, and check every configuration's batch size
    against its training set (fails before anything starts)."""
    spec = source.spec
    download = bool(spec.train.get("download", False))
    datasets = {}
    configs = source.fixed_configs()
    for key in sorted({data_key(flat) for flat in configs}, key=str):
        name, root, val_fraction, train_limit, image_size, memory_gb = key
        try:
            datasets[key] = load_dataset(
                name,
                root,
                download=download,
                val_fraction=val_fraction,
                train_limit=train_limit,
                image_size=image_size,
                data_memory_gb=memory_gb,
            )
        except ConfigError as err:
            raise err.in_file(spec.source or "space", "train") from None
    for flat in configs:
        _check_batch_sizes(spec, flat, datasets[data_key(flat)])
    return datasets


def check_models(
    source: TrialSource, datasets: Mapping[DataKey, ImageData]
) -> dict[str, list[str]]:
    """Build every model of the sweep once on the data it trains on and probe it with one batch
    (fails before anything starts); what each model's stem was adapted to, said once here and in
    each trial's log, by model name."""
    notes: dict[str, list[str]] = {}
    seen: set[tuple[str, int, int, int]] = set()
    for flat in source.fixed_configs():
        model = flat.get("model", TrainConfig.model)
        info = datasets[data_key(flat)].info
        # by what the probe takes, not the data set's name: two image folders or image sizes
        # under one name are two probes
        probe = (model, info.in_channels, info.image_size, info.num_classes)
        if probe in seen:
            continue
        seen.add(probe)
        try:
            found = check_model(
                model,
                in_channels=info.in_channels,
                image_size=info.image_size,
                num_classes=info.num_classes,
            )
        except ConfigError as err:
            raise err.in_file(source.spec.source or "space", "train") from None
        new = [note for note in found if note not in notes.get(model, [])]
        for note in new:
            print(f"{model}: {note}", flush=True)
        if _stacks(source.spec) and model not in MODELS:  # the paper's models are known to stack
            try:
                check_stackable(model, info.in_channels, info.image_size, info.num_classes)
            except ConfigError as err:
                raise err.in_file(source.spec.source or "space") from None
        notes[model] = notes.get(model, []) + new
    return notes


def _stacks(spec: SweepSpec) -> bool:
    """Whether the sweep's trials train two or more seeds as one stacked model when asked."""
    return spec.seed_packing == "stacked" and spec.seeds > 1 and spec.seeds_per_trial != 1


def model_and_data_names(source: TrialSource) -> list[str]:
    """The model and data set names of every configuration (what the sweep may import)."""
    return [
        name
        for flat in source.fixed_configs()
        for name in (flat.get("model", TrainConfig.model), flat.get("dataset", TrainConfig.dataset))
    ]


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
