"""The evaluation of a trial's seeds on a held-out split, the same for seeds trained alone or stacked.

A model under evaluation is a function from a batch to every seed's logits, ``[seeds, batch,
classes]`` (one seed alone gives ``[1, batch, classes]``); the loss is summed in float32 or wider,
whatever the autocast dtype, and the last partial batch may be padded to the batch size (a compiled
model sees one shape; padded rows count in neither the loss nor the accuracy).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from taso_tune.training.data.sets import PAD_LABEL, DeviceBatches, ImageData
from taso_tune.training.device import DeviceSetup

#: The smallest evaluation batch (evaluation holds no activations for a backward pass).
MIN_EVAL_BATCH = 256


def at_least_float32(values: torch.Tensor) -> torch.Tensor:
    """Logits or losses to compute and sum a loss in: bf16 (autocast) raised to float32, float32
    and float64 (a model built under ``torch.set_default_dtype(torch.float64)``) kept as they
    are."""
    return values.to(torch.promote_types(values.dtype, torch.float32))


def held_out_splits(data: ImageData) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The splits an epoch is evaluated on, in record order: validation (when there is one),
    test."""
    splits = {"test": (data.x_test, data.y_test)}
    if len(data.y_val):
        splits = {"val": (data.x_val, data.y_val), **splits}
    return splits


@torch.no_grad()
def evaluate_seeds(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seeds: int,
    data: ImageData,
    batch_size: int,
    setup: DeviceSetup,
    pad_last: bool = False,
) -> tuple[list[float], list[float]]:
    """Every seed's mean loss and accuracy on the split ``(x, y)`` (no augmentation); the caller
    puts its model in eval mode. ``logits_of(batch)`` gives ``[seeds, batch, classes]``."""
    loss_sum = torch.zeros(seeds, device=setup.device)
    correct = torch.zeros(seeds, device=setup.device, dtype=torch.int64)
    batches = DeviceBatches(
        x,
        y,
        data.info,
        max(batch_size, MIN_EVAL_BATCH),
        pad_last=pad_last,
        memory_format=setup.memory_format,
    )
    for xb, yb in batches:
        with setup.autocast():
            logits = at_least_float32(logits_of(xb))
        losses = F.cross_entropy(
            logits.flatten(0, 1), yb.repeat(seeds), reduction="none", ignore_index=PAD_LABEL
        )
        loss_sum += losses.view(seeds, -1).sum(1)
        correct += (logits.argmax(-1) == yb).sum(1)
    n = max(len(y), 1)
    return (loss_sum / n).tolist(), (correct.double() / n).tolist()
