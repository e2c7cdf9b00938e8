"""Live trial metrics exported through ``ray.util.metrics`` to Ray's Prometheus endpoint.

Each trial worker sets gauges tagged with the experiment, the trial and the optimizer, so Ray's
metrics stack (and the Grafana dashboard shipped in ``dashboards/grafana/``) shows accuracy, loss,
learning rate, epoch and throughput of every running trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.util.metrics import Gauge

TAG_KEYS = ("experiment", "trial", "optimizer")
#: Gauge name -> (record key, description). Ray prefixes exported names with ``ray_``.
GAUGES: dict[str, tuple[str, str]] = {
    "taso_tune_val_acc": ("val_acc", "Validation accuracy of the trial's latest epoch"),
    "taso_tune_test_acc": ("test_acc", "Test accuracy of the trial's latest epoch"),
    "taso_tune_train_loss": ("train_loss", "Mean training loss of the trial's latest epoch"),
    "taso_tune_val_loss": ("val_loss", "Validation loss of the trial's latest epoch"),
    "taso_tune_lr": ("lr", "Learning rate in force during the trial's latest epoch"),
    "taso_tune_epoch": ("epoch", "Epochs the trial has completed"),
    "taso_tune_images_per_second": ("images_per_second", "Training throughput of the latest epoch"),
}

_gauges: dict[str, Gauge] = {}


def _gauge(name: str) -> Gauge:
    # one Gauge object per worker process, shared by the trials it runs (actors are reused)
    if name not in _gauges:
        _gauges[name] = Gauge(name, description=GAUGES[name][1], tag_keys=TAG_KEYS)
    return _gauges[name]


class TrialGauges:
    """The gauges of one trial; ``update`` sets them from an epoch's metrics."""

    def __init__(self, experiment: str, trial: str, optimizer: str) -> None:
        self.tags = {"experiment": experiment, "trial": trial, "optimizer": optimizer}

    def update(self, metrics: Mapping[str, Any]) -> None:
        for name, (key, _) in GAUGES.items():
            value = metrics.get(key)
            if isinstance(value, (int, float)) and value == value:  # skip missing and NaN
                _gauge(name).set(float(value), tags=self.tags)
