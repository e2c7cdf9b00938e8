"""The Ray Tune function trainable around :class:`taso_tune.train.Run`.

One trial = one configuration and one seed. Each epoch it calls ``tune.report`` with every metric
of the epoch record; every ``checkpoint_every`` epochs (and at the last one) the report carries a
checkpoint of the whole run (model, optimizer, schedule, RNG, epoch), so a restarted trial continues
exactly where it stopped, with the same schedule. A trial whose loss goes non-finite reports
``status: diverged`` and ends itself (ASHA does not stop a trial that reports NaN).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import ray
import torch
from ray import tune

from taso_tune.data import ImageData
from taso_tune.names import STATE_FILE
from taso_tune.train import Run, TrainConfig
from taso_tune.tuning import live_metrics
from taso_tune.tuning.trials import TrialSource

#: Keys of a trial's flat config that describe it but are not training fields.
LABEL_KEYS = ("config_id", "block")

DataKey = tuple[str, str | None, float, int | None]


def data_key(flat: Mapping[str, Any]) -> DataKey:
    """What identifies the data a configuration trains on (several configurations share it)."""
    return (
        flat.get("dataset", TrainConfig.dataset),
        flat.get("data_root"),
        float(flat.get("val_fraction", TrainConfig.val_fraction)),
        flat.get("train_limit"),
    )


def train_config_of(flat: Mapping[str, Any], cpus: float, device: str = "auto") -> TrainConfig:
    """The :class:`TrainConfig` of a trial; torch threads follow the trial's CPU resources and the
    device its GPU resources (a trial given no GPU never touches one)."""
    values = {k: v for k, v in flat.items() if k not in LABEL_KEYS}
    values.setdefault("threads", max(1, int(cpus)))
    if values.get("device", "auto") == "auto":
        values["device"] = device
    return TrainConfig.from_flat(values)


def _load_state(checkpoint: tune.Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)


def train_trial(
    config: dict[str, Any],
    *,
    datasets: Mapping[DataKey, ImageData],
    experiment: str,
    checkpoint_every: int = 1,
    cpus: float = 1.0,
    device: str = "auto",
    source: TrialSource,
) -> None:
    """Ray Tune function trainable: train one configuration/seed, report each epoch."""
    # Ray logs a line for every persisted checkpoint; at one checkpoint an epoch that drowns the output
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    flat = source.flat_config(config)
    train_config = train_config_of(flat, cpus, device)
    run = Run(train_config, datasets[data_key(flat)], _load_state(tune.get_checkpoint()))
    labels = {
        "config_id": flat.get("config_id", ""),
        "optimizer": train_config.optimizer,
        "seed": train_config.seed,
        "planned_epochs": train_config.epochs,
        "model": train_config.model,
        "dataset": train_config.dataset,
        "batch_size": train_config.batch_size,
        "node_id": ray.get_runtime_context().get_node_id(),
        # the resolved optimizer fields (recipe defaults included), for results and export
        "hp": {k: list(v) if isinstance(v, tuple) else v for k, v in train_config.hparams.items()},
    }
    gauges = live_metrics.TrialGauges(experiment, tune.get_context().get_trial_name(), train_config.optimizer)
    while run.status == "running":
        record = run.step_epoch()
        metrics = {**record, **labels, "diverged": run.status == "diverged"}
        gauges.update(metrics)
        last = run.status != "running"
        if last or run.epoch % checkpoint_every == 0:
            with tempfile.TemporaryDirectory() as folder:
                torch.save(run.state_dict(), os.path.join(folder, STATE_FILE))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(metrics)
