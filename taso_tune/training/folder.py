"""A training run kept in a folder: ``config.yaml`` and ``metrics.csv`` (what ``taso-tune train`` writes)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable

from taso_tune.core.records import EPOCH_FIELDS, EpochRecord
from taso_tune.core.storage import write_text_atomic, write_yaml_atomic
from taso_tune.training.run import Run

#: Columns of a training folder's ``metrics.csv``.
CSV_COLUMNS: tuple[str, ...] = tuple(f for f in EPOCH_FIELDS if f != "total_epochs")


def metrics_csv(records: list[EpochRecord]) -> str:
    """The epoch records as CSV text (:data:`CSV_COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def train_run_to_folder(
    run: Run, out: str, on_epoch: Callable[[Run, EpochRecord], None] | None = None
) -> list[EpochRecord]:
    """Train ``run`` (built beforehand, so bad input fails before the folder is created) and keep
    its results in ``out``: ``config.yaml`` (the resolved config) at the start, ``metrics.csv``
    rewritten atomically after every epoch. ``on_epoch(run, record)`` is called after each epoch
    (progress output)."""
    os.makedirs(out, exist_ok=True)
    write_yaml_atomic(os.path.join(out, "config.yaml"), run.config.to_flat())
    records: list[EpochRecord] = []
    while run.status == "running":
        records.append(run.step_epoch())
        write_text_atomic(os.path.join(out, "metrics.csv"), metrics_csv(records))
        if on_epoch is not None:
            on_epoch(run, records[-1])
    return records
