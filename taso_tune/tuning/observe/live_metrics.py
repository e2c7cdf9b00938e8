"""Live trial metrics exported through ``ray.util.metrics`` to Ray's Prometheus endpoint.

Each trial worker sets gauges tagged with the experiment, the trial and the optimizer, so Ray's
metrics stack (and the Grafana dashboard shipped in ``dashboards/grafana/``) shows accuracy, loss,
learning rate, epoch and throughput of every running trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.util.metrics import Gauge

from taso_tune.core.records import FIELD_DESCRIPTIONS

TAG_KEYS = ("experiment", "trial", "optimizer")
#: The epoch fields exported as gauges; Ray prefixes exported names with ``ray_``.
GAUGED_FIELDS = (
    "val_acc",
    "test_acc",
    "train_loss",
    "val_loss",
    "lr",
    "epoch",
    "images_per_second",
)
#: Gauge name -> (record key, description).
GAUGES: dict[str, tuple[str, str]] = {
    f"taso_tune_{key}": (key, FIELD_DESCRIPTIONS[key]) for key in GAUGED_FIELDS
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
