"""Checkpoint cost: the size of one trial's checkpoint and the time ``torch.save`` takes to write it.

    python benchmarks/checkpoint_cost.py            # 5-seed ResNet18 and VGG19 on CIFAR10-size images
    python benchmarks/checkpoint_cost.py --quick    # 2 seeds, for smoke tests

A trial's checkpoint is :meth:`SeedRuns.state_dict` of all its seeds (model, optimizer, schedule,
RNG, records), written with ``torch.save`` as the trainable does each time a checkpoint is due. The
state is taken after one training step on a few synthetic images, so the optimizer's buffers exist
(their size does not depend on the data). Each save goes to a local temporary file; the median of
the repeats is reported, with the rate in MB/s. What this says about a GPU epoch (how often a
checkpoint may be written for it to cost a few percent) is in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import torch
from common import Row, add_repo_to_path, median, section_main

add_repo_to_path()  # taso_tune from a plain checkout
from gpu import WORKLOADS, synthetic  # noqa: E402

from taso_tune.training.run import TrainConfig  # noqa: E402
from taso_tune.training.seeds import SeedRuns  # noqa: E402

SECTION = "checkpoint"


def save_seconds(state: dict, folder: str, repeats: int) -> tuple[float, int]:
    """(median seconds of ``torch.save`` to a file, file bytes)."""
    path = os.path.join(folder, "run_state.pt")
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.save(state, path)
        durations.append(time.perf_counter() - start)
    size = os.path.getsize(path)
    os.remove(path)
    return median(durations), size


def run(quick: bool) -> list[Row]:
    seeds, repeats = (2, 1) if quick else (5, 3)
    rows = []
    for workload in WORKLOADS[1:]:  # vgg19, resnet18 on CIFAR10-size images
        config = TrainConfig(
            model=workload.model,
            dataset=workload.dataset,
            batch_size=8,
            epochs=100,
            device="cpu",
            threads=1,
        )
        runs = SeedRuns(config, list(range(seeds)), synthetic(workload, 8, "cpu"))
        runs.step_epoch()  # one step: the optimizer's buffers exist
        state = runs.state_dict()
        with tempfile.TemporaryDirectory() as folder:
            seconds, size = save_seconds(state, folder, repeats)
        rows.append(
            Row(
                SECTION,
                f"{workload.model}, {seeds} seeds, optimizer {config.optimizer}: torch.save to local disk",
                f"{seconds:.2f} s",
                f"{size / 1e6:.0f} MB",
                note=f"{size / 1e6 / seconds:.0f} MB/s; median of {repeats}",
            )
        )
    return rows


if __name__ == "__main__":
    section_main(run, __doc__.splitlines()[0], sys.argv[1:])
