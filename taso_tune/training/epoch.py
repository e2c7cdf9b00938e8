"""One epoch's record and the divergence rule, the same for a seed trained alone or stacked.

A training loss that is non-finite, or above :data:`DIVERGED_LOSS` (logits blown up: with SGD at lr 2
the paper's VGG19 ended at chance level), ends the seed's run with status ``diverged``; a seed that
has trained its planned epochs is ``complete``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from taso_tune.core.records import EpochRecord, RunStatus

#: An epoch's mean cross-entropy above this means the weights blew up (chance level is ln(classes),
#: 2.3-4.6).
DIVERGED_LOSS = 1e4


def has_diverged(train_loss: float) -> bool:
    """Whether an epoch's mean training loss says the weights blew up."""
    return not math.isfinite(train_loss) or train_loss > DIVERGED_LOSS


def status_after(train_loss: float, epoch: int, total_epochs: int) -> RunStatus:
    """A seed's status after ``epoch`` of ``total_epochs``, whose mean training loss was
    ``train_loss``."""
    if has_diverged(train_loss):
        return "diverged"
    return "complete" if epoch >= total_epochs else "running"


def epoch_record(
    *,
    epoch: int,
    total_epochs: int,
    lr: float,
    train_loss: float,
    train_acc: float,
    evaluated: Mapping[str, tuple[float, float]],
    epoch_seconds: float,
    images_per_second: float,
) -> EpochRecord:
    """A seed's record of ``epoch``: the lr it trained at, its training loss and accuracy, the loss
    and accuracy of each evaluated split (``{"val": (loss, acc), "test": ...}``; no validation keys
    without a validation split), its timings, and its status by :func:`status_after`."""
    record: EpochRecord = {  # type: ignore[typeddict-item]  # the splits follow
        "epoch": epoch,
        "total_epochs": total_epochs,
        "lr": lr,
        "train_loss": train_loss,
        "train_acc": train_acc,
    }
    for split, (loss, accuracy) in evaluated.items():
        record[f"{split}_loss"] = loss  # type: ignore[literal-required]
        record[f"{split}_acc"] = accuracy  # type: ignore[literal-required]
    record["epoch_seconds"] = epoch_seconds
    record["images_per_second"] = images_per_second
    record["status"] = status_after(train_loss, epoch, total_epochs)
    return record
