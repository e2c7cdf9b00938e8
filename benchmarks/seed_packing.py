"""Seed packing: a configuration's k seeds trained as one stacked model against one after another.

Both sides train the same k seeds of one configuration for the same epochs in this process, the data
already on the device: ``StackedRuns`` (one forward, backward and optimizer step for all k seeds,
``torch.func.vmap``) against ``SeedRuns`` (k runs, one after another each epoch), alternating A B,
B A, A B. The ratio is separate seconds / stacked seconds (above 1: stacking is faster). Beside it,
the peak memory of each side on CUDA (the peak allocated device memory). On the CPU the memory of
each side is section 5's (a fresh process each): in this process the side that runs second reuses
what the allocator kept from the first, so a growth measured here says more about the order.

* CPU (``make bench``, section 6): LeNet5 on the bundled digits, 3 seeds (the quickstart's), 1 thread;
  this decides ``seed_packing: auto`` on the CPU.
* GPU (``benchmarks/gpu.py``): 8 LeNet5 seeds on MNIST-size data (target >= 4x) and 5 ResNet18 seeds
  on CIFAR10-size data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from common import Row, Target, add_repo_to_path, interleaved, median, section_main

add_repo_to_path()

from taso_tune.training.data.sets import ImageData, load_dataset  # noqa: E402
from taso_tune.training.run import TrainConfig  # noqa: E402
from taso_tune.training.seeds import SeedRuns  # noqa: E402
from taso_tune.training.stacked import StackedRuns  # noqa: E402

SECTION = "6 seed packing"
PACKING_TARGET = Target(">=", 4, "x")


def timed_side(
    runs_class: type,
    config: TrainConfig,
    seeds: list[int],
    data: ImageData,
    epochs: int,
    device: str,
) -> Callable[[], tuple[float, float]]:
    """A side of the comparison: build the runs (not timed), train ``epochs`` epochs; returns
    (seconds, peak MiB of device memory on CUDA, 0 on the CPU)."""

    def side() -> tuple[float, float]:
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        runs = runs_class(config, seeds, data)
        start = time.perf_counter()
        for _ in range(epochs):
            runs.step_epoch()  # reads each seed's loss and accuracy: a sync per epoch
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
        return seconds, peak

    return side


def compare(
    label: str,
    config: TrainConfig,
    seeds: list[int],
    data: ImageData,
    epochs: int,
    repeats: int,
    device: str,
    target: Target | None = None,
    section: str = SECTION,
) -> list[Row]:
    """The rows of one comparison: speed (with each round's ratio) and memory."""
    sides = {
        "stacked": timed_side(StackedRuns, config, seeds, data, epochs, device),
        "separate": timed_side(SeedRuns, config, seeds, data, epochs, device),
    }
    results = interleaved(sides, repeats)
    ratios = [s[0] / p[0] for p, s in zip(results["stacked"], results["separate"], strict=True)]
    stacked_s, separate_s = (
        median([r[0] for r in results["stacked"]]),
        median([r[0] for r in results["separate"]]),
    )
    what = (
        f"{config.model}, batch {config.batch_size}, {epochs} epochs, n={repeats}; rounds "
        + ", ".join(f"{r:.2f}" for r in ratios)
    )
    speed = Row(
        section,
        f"{label}: {len(seeds)} seeds stacked vs one after another",
        f"{stacked_s:.3g} s",
        f"{separate_s:.3g} s",
        median(ratios),
        target,
        f"speed-up = separate / stacked; {what}",
    )
    if device != "cuda":
        return [speed]  # the CPU's memory rows are section 5's, each side in a fresh process
    return [
        speed,
        Row(
            section,
            f"{label}: peak memory, {len(seeds)} seeds stacked vs separate",
            f"{median([r[1] for r in results['stacked']]):.0f} MiB",
            f"{median([r[1] for r in results['separate']]):.0f} MiB",
            note="device MiB (peak allocated)",
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    """The CPU rows (``make bench``): LeNet5/digits, 3 seeds, 1 thread."""
    torch.set_num_threads(1)
    data = load_dataset("digits")
    epochs, repeats = (1, 1) if quick else (5, 3)
    config = TrainConfig(
        model="lenet5", dataset="digits", optimizer="taso", epochs=epochs, device="cpu", threads=1
    )
    return compare("LeNet5/digits on the CPU", config, [0, 1, 2], data, epochs, repeats, "cpu")


if __name__ == "__main__":
    section_main(run, __doc__.splitlines()[0])
