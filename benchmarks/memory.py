"""Memory: peak resident memory of one trial worker, each measured in a fresh process.

A worker process imports what a Ray trial worker imports (torch, Ray, the trainable), holds its own
copy of the data (Ray hands the data sets to each worker), builds the run and trains:

* LeNet5 on digits: two epochs and one checkpoint (``torch.save`` of the run's state);
* ResNet18 on CIFAR-size data (50,000 + 10,000 synthetic uint8 images, 3 x 32 x 32) on the CPU: two
  steps of batch 128 (the first allocates the optimizer's momentum), not a whole epoch; 2 threads
  to keep it short (threads do not change the memory).

The peak is the process's resident-memory high-water mark from the end of the imports on (Linux's
VmHWM, reset once the imports are done: importing torch and Ray peaks above what a small trial then
uses, so a high-water mark since the process started would show only the imports). The stages are
psutil's RSS readings; the growth is the peak minus the RSS after the imports.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable

from common import Row, add_repo_to_path, peak_rss_mib, reset_peak_rss, section_main

SECTION = "5 memory"
MiB = 2**20


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / MiB


def lenet5_digits(quick: bool) -> dict[str, float]:
    import torch

    from taso_tune.training.data.sets import load_dataset
    from taso_tune.training.run import Run, TrainConfig

    stages = {"imports": rss_mib()}
    data = load_dataset("digits")
    stages["data"] = rss_mib()
    run = Run(
        TrainConfig(model="lenet5", dataset="digits", epochs=2, device="cpu", threads=1), data
    )
    stages["run built"] = rss_mib()
    for _ in range(1 if quick else 2):
        run.step_epoch()
    torch.save(run.state_dict(), io.BytesIO())
    return stages


def lenet5_digits_seeds(packing: str) -> Callable[[bool], dict[str, float]]:
    """LeNet5 on digits, the quickstart's 3 seeds of one configuration in one trial, ``packing``."""

    def worker(quick: bool) -> dict[str, float]:
        import torch

        from taso_tune.training.data.sets import load_dataset
        from taso_tune.training.run import TrainConfig
        from taso_tune.training.seeds import SeedRuns
        from taso_tune.training.stacked import StackedRuns

        stages = {"imports": rss_mib()}
        data = load_dataset("digits")
        stages["data"] = rss_mib()
        runs_class = StackedRuns if packing == "stacked" else SeedRuns
        runs = runs_class(
            TrainConfig(model="lenet5", dataset="digits", epochs=2, device="cpu", threads=1),
            [0, 1, 2],
            data,
        )
        stages["runs built"] = rss_mib()
        for _ in range(1 if quick else 2):
            runs.step_epoch()
        torch.save(runs.state_dict(), io.BytesIO())
        return stages

    return worker


def resnet18_cifar(quick: bool) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    from taso_tune.training.data.sets import DatasetInfo, ImageData
    from taso_tune.training.run import Run, TrainConfig

    stages = {"imports": rss_mib()}
    n_train, n_val, n_test = (1024, 128, 256) if quick else (45_000, 5_000, 10_000)
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)

    def labels(n: int) -> torch.Tensor:
        return torch.randint(0, 10, (n,), generator=g)

    info = DatasetInfo("cifar10", 3, 32, 10, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), augment=True)
    data = ImageData(
        info,
        images(n_train),
        labels(n_train),
        images(n_val),
        labels(n_val),
        images(n_test),
        labels(n_test),
    )
    stages["data"] = rss_mib()
    run = Run(
        TrainConfig(model="resnet18", dataset="cifar10", batch_size=128, device="cpu", threads=2),
        data,
    )
    stages["run built"] = rss_mib()
    run.module.train()
    for _, (xb, yb) in zip(range(2), run.train_batches, strict=False):
        loss = F.cross_entropy(run.forward(xb), yb)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
    return stages


WORKERS: dict[str, tuple[str, Callable[[bool], dict[str, float]]]] = {
    "lenet5": ("LeNet5/digits trial worker (2 epochs + checkpoint)", lenet5_digits),
    "lenet5-3-separate": (
        "LeNet5/digits trial worker, 3 seeds one after another (2 epochs + checkpoint)",
        lenet5_digits_seeds("separate"),
    ),
    "lenet5-3-stacked": (
        "LeNet5/digits trial worker, 3 seeds stacked (2 epochs + checkpoint)",
        lenet5_digits_seeds("stacked"),
    ),
    "resnet18": ("ResNet18 CIFAR-size trial worker, CPU (2 steps of batch 128)", resnet18_cifar),
}


def worker(name: str, quick: bool) -> None:
    """In the fresh process: import as a trial worker does, run ``name``, print one JSON line."""
    add_repo_to_path()
    import taso_tune.tuning.trainable  # noqa: F401  (what a trial worker imports: torch, ray, the loop)

    reset = reset_peak_rss()
    stages = WORKERS[name][1](quick)
    print(json.dumps({"stages": stages, "peak": peak_rss_mib(), "since_imports": reset}))


def measure(name: str, quick: bool) -> dict:
    command = [sys.executable, __file__, "--worker", name] + (["--quick"] if quick else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[Row]:
    rows = []
    for name, (label, _) in WORKERS.items():
        result = measure(name, quick)
        stages = ", ".join(f"{stage} {mib:.0f}" for stage, mib in result["stages"].items())
        imports = result["stages"]["imports"]
        since = (
            "after the imports"
            if result["since_imports"]
            else "since the start (no VmHWM reset here)"
        )
        rows.append(
            Row(
                SECTION,
                f"peak RSS: {label}",
                f"{result['peak']:.0f} MiB",
                f"{imports:.0f} MiB (imports)",
                note=f"growth {result['peak'] - imports:.0f} MiB; peak {since}; RSS MiB after {stages}",
            )
        )
    return rows


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker(sys.argv[sys.argv.index("--worker") + 1], "--quick" in sys.argv)
    else:
        section_main(run, __doc__.splitlines()[0])
