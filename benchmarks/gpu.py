"""GPU benchmark: epoch seconds of the paper's models, their FLOP floor, and packing small trials.

    python benchmarks/gpu.py            # on a machine with one CUDA GPU; under 8 minutes
    python benchmarks/gpu.py --smoke    # everything tiny, on the CPU, in under a minute

Prints one table:

* epoch seconds of :meth:`taso_tune.training.run.Run.train_epoch` (the project's own training step: batches
  cut and augmented on the device, no host sync per step, fused optimizer) for LeNet5 on MNIST-size
  data (60,000 x 1 x 28 x 28) and VGG19 and ResNet18 on CIFAR10-size data (50,000 x 3 x 32 x 32,
  with the crop/flip augmentation), synthetic uint8 tensors of the real shapes, at batch 128 and 512:
  fp32 (PyTorch defaults: cuDNN convolutions may use TF32, matmuls do not), bf16 autocast +
  channels_last, and that + ``torch.compile`` (batch 512 only, to keep within the time);
* beside each, the FLOP floor of an epoch: FLOPs counted by ``FlopCounterMode`` on one forward and
  backward, times the images of an epoch, over the measured dense matmul rate of the same dtype;
* the host syncs of one training epoch (``torch.cuda.set_sync_debug_mode``): two reads at its end;
* packing: 8 LeNet5 trials at once on one GPU, each its own process (as Ray runs trials given
  ``gpu: 0.125``), against one alone: throughput speed-up = 8 x t(alone) / t(8 at once);
* seed packing (:mod:`seed_packing`): 8 LeNet5 seeds on MNIST-size data and 5 ResNet18 seeds on
  CIFAR10-size data (10,000 images) trained as one stacked model against one after another, with
  the peak device memory of each side.

Targets are printed beside: ResNet18 <= 1.5 s/epoch and VGG19 <= 1.2 s/epoch at batch 512 in bf16;
packing >= 4x. Needs only torch and torchvision: the repository root is put on ``sys.path`` and only
taso_tune modules that do not import Ray are used. No new item starts after ``--budget-s`` seconds;
the items left are printed as skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    REPO_ROOT,
    Row,
    Target,
    add_repo_to_path,
    format_facts,
    format_table,
    machine_facts,
    median,
    write_between_markers,
)
from seed_packing import PACKING_TARGET as STACKING_TARGET
from seed_packing import compare as compare_packing
from torch.utils.flop_counter import FlopCounterMode

add_repo_to_path()  # taso_tune from a plain checkout
from taso_tune.training.data.sets import DatasetInfo, ImageData  # noqa: E402
from taso_tune.training.models import build_model  # noqa: E402
from taso_tune.training.run import Run, TrainConfig  # noqa: E402

SECTION = "gpu"
GPU_BEGIN, GPU_END = "<!-- bench-gpu:begin -->", "<!-- bench-gpu:end -->"


@dataclass(frozen=True)
class Workload:
    model: str
    info: DatasetInfo
    images: int  # training images of the real data set

    @property
    def dataset(self) -> str:
        return self.info.name  # a registered name: TrainConfig checks it, the data come from here


MNIST = DatasetInfo("mnist", 1, 28, 10, (0.1307,), (0.3081,), augment=False)
CIFAR10 = DatasetInfo(
    "cifar10", 3, 32, 10, (0.491, 0.482, 0.446), (0.247, 0.243, 0.261), augment=True
)
WORKLOADS = (
    Workload("lenet5", MNIST, 60_000),
    Workload("vgg19", CIFAR10, 50_000),
    Workload("resnet18", CIFAR10, 50_000),
)
MODES: dict[str, dict[str, bool]] = {
    "fp32": {"amp": False, "channels_last": False, "compile": False},
    "bf16+cl": {"amp": True, "channels_last": True, "compile": False},
    "bf16+cl+compile": {"amp": True, "channels_last": True, "compile": True},
}
#: (model, batch) -> the epoch-seconds target of its bf16 rows
TARGETS = {("resnet18", 512): Target("<=", 1.5, " s"), ("vgg19", 512): Target("<=", 1.2, " s")}
PACKING_TARGET = Target(">=", 4, "x")


@dataclass(frozen=True)
class Settings:
    device: str
    images: int | None  # None: the real data set's size
    batches: tuple[int, ...]
    warmup_epochs: int
    timed_epochs: int
    compile: bool
    matmul_size: int
    packed: int
    packing_images: int | None
    budget_s: float
    stacked: tuple[
        tuple[int, int | None], tuple[int, int | None]
    ]  # (seeds, images): LeNet5, ResNet18


FULL = Settings(
    "cuda", None, (128, 512), 1, 2, True, 8192, 8, None, 330.0, ((8, None), (5, 10_000))
)
SMOKE = Settings("cpu", 16, (4, 8), 0, 1, False, 256, 2, 256, 40.0, ((2, 64), (2, 32)))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def synthetic(workload: Workload, images: int | None, device: str, seed: int = 0) -> ImageData:
    """Random uint8 images of the workload's real shape, already on ``device``; no val/test split."""
    n = images or workload.images
    info = workload.info
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randint(
        0,
        256,
        (n, info.in_channels, info.image_size, info.image_size),
        dtype=torch.uint8,
        device=device,
        generator=g,
    )
    y = torch.randint(0, info.num_classes, (n,), device=device, generator=g)
    return ImageData(info, x, y, x[:0], y[:0], x[:0], y[:0])


def make_run(workload: Workload, data: ImageData, batch: int, device: str, **flags: bool) -> Run:
    config = TrainConfig(
        model=workload.model,
        dataset=workload.dataset,
        batch_size=batch,
        epochs=1000,
        device=device,
        threads=None if device == "cuda" else 1,
        **flags,
    )
    return Run(config, data)


# --- rates and floors -------------------------------------------------------------------------


def matmul_tflops(dtype: torch.dtype, device: str, n: int, iters: int = 10) -> float:
    """Measured dense matmul rate (TFLOP/s) of two n x n matrices."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - start) / 1e12


def flops_per_image(workload: Workload, batch: int = 2) -> float:
    """Forward + backward FLOPs of one image, counted on one batch of meta tensors (shapes only: the
    count depends on neither the device nor the dtype)."""
    info = workload.info
    model = build_model(
        workload.model,
        in_channels=info.in_channels,
        image_size=info.image_size,
        num_classes=info.num_classes,
    ).to("meta")
    x = torch.randn(batch, info.in_channels, info.image_size, info.image_size, device="meta")
    y = torch.randint(0, info.num_classes, (batch,), device="meta")
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


# --- epochs -----------------------------------------------------------------------------------


def epoch_seconds(run: Run, warmup: int, timed: int) -> tuple[float, float]:
    """(median seconds of the timed epochs, seconds of the first epoch, compile included)."""
    durations = []
    for _ in range(warmup + timed):
        start = time.perf_counter()
        run.train_epoch()  # ends in a host read, so the time is the GPU's too
        durations.append(time.perf_counter() - start)
    return median(durations[warmup:]), durations[0]


def count_host_syncs(fn: Callable[[], object]) -> int:
    """How many synchronising CUDA calls ``fn`` makes (``torch.cuda.set_sync_debug_mode``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


# --- packing ----------------------------------------------------------------------------------


def packing_worker(
    images: int | None, batch: int, epochs: int, device: str, barrier, results
) -> None:
    """One LeNet5 trial in its own process: warm up, wait for the others, time ``epochs`` epochs."""
    torch.set_num_threads(1)
    workload = WORKLOADS[0]
    run = make_run(workload, synthetic(workload, images, device), batch, device)
    run.train_epoch()
    barrier.wait()
    start = time.monotonic()  # one clock for every process (CLOCK_MONOTONIC)
    for _ in range(epochs):
        run.train_epoch()
    results.put((start, time.monotonic()))


def packed_seconds(
    processes: int, images: int | None, batch: int, epochs: int, device: str
) -> float:
    """Wall seconds from the common start to the last of ``processes`` trials finishing."""
    ctx = torch.multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=packing_worker, args=(images, batch, epochs, device, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    spans = [
        results.get(timeout=300) for _ in workers
    ]  # a crashed worker fails this, not the whole call
    for worker in workers:
        worker.join()
    return max(end for _, end in spans) - min(start for start, _ in spans)


# --- the table --------------------------------------------------------------------------------


def run(settings: Settings) -> list[Row]:
    deadline = time.perf_counter() + settings.budget_s
    device = settings.device
    rows: list[Row] = []
    rates = {
        "fp32": matmul_tflops(torch.float32, device, settings.matmul_size),
        "bf16": matmul_tflops(torch.bfloat16, device, settings.matmul_size),
    }
    rows += [
        Row(
            SECTION,
            f"dense matmul rate, {dtype}",
            f"{rate:.1f} TFLOP/s",
            note=f"{settings.matmul_size}^2 matrices",
        )
        for dtype, rate in rates.items()
    ]
    flops = {w.model: flops_per_image(w) for w in WORKLOADS}

    def epoch_row(workload: Workload, batch: int, mode: str) -> Row:
        measure = f"{workload.model} epoch, batch {batch}, {mode}"
        target = TARGETS.get((workload.model, batch)) if mode != "fp32" else None
        if time.perf_counter() > deadline:
            return Row(SECTION, measure, "skipped: time budget", target=target)
        data = synthetic(workload, settings.images, device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        run_ = make_run(workload, data, batch, device, **MODES[mode])
        seconds, first = epoch_seconds(run_, settings.warmup_epochs, settings.timed_epochs)
        images = len(run_.train_batches) * batch
        floor = (
            flops[workload.model] * images / (rates["bf16" if mode != "fp32" else "fp32"] * 1e12)
        )
        peak = (
            f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; "
            if device == "cuda"
            else ""
        )
        return Row(
            SECTION,
            measure,
            f"{seconds:.3g} s",
            f"{floor:.3g} s FLOP floor",
            seconds / floor,
            target,
            f"{peak}{flops[workload.model] / 1e6:,.1f} MFLOP/image; first epoch {first:.3g} s",
            judged=seconds,
        )

    for workload in WORKLOADS:
        for batch in settings.batches:
            for mode in ("fp32", "bf16+cl"):
                rows.append(epoch_row(workload, batch, mode))

    if device == "cuda":
        lenet = WORKLOADS[0]
        probe = make_run(lenet, synthetic(lenet, settings.images, device), 128, device)
        probe.train_epoch()
        syncs = count_host_syncs(probe.train_epoch)
        rows.append(
            Row(
                SECTION,
                "host syncs in one training epoch (LeNet5, batch 128)",
                f"{syncs}",
                f"{len(probe.train_batches)} steps",
                target=Target("<=", 4),
                judged=syncs,
                note="2 expected: loss and accuracy read at the end; a per-step sync shows as >= steps",
            )
        )
    else:
        rows.append(Row(SECTION, "host syncs in one training epoch", "n/a on CPU"))

    packing = f"LeNet5 trials at once, {settings.packed} processes vs 1"
    if time.perf_counter() > deadline:
        rows.append(Row(SECTION, packing, "skipped: time budget", target=PACKING_TARGET))
    else:
        epochs = settings.timed_epochs
        alone = packed_seconds(1, settings.packing_images, 128, epochs, device)
        packed = packed_seconds(settings.packed, settings.packing_images, 128, epochs, device)
        speedup = settings.packed * alone / packed
        rows.append(
            Row(
                SECTION,
                packing,
                f"{packed:.2f} s for {settings.packed} x {epochs} epochs",
                f"{alone:.2f} s for 1 x {epochs}",
                speedup,
                PACKING_TARGET,
                "throughput speed-up = n x t(alone) / t(n at once); batch 128",
            )
        )

    rows += stacking_rows(settings, deadline)

    for workload in WORKLOADS:
        if settings.compile:
            rows.append(epoch_row(workload, max(settings.batches), "bf16+cl+compile"))
        else:
            rows.append(
                Row(
                    SECTION,
                    f"{workload.model} epoch, batch {max(settings.batches)}, bf16+cl+compile",
                    "skipped: --smoke",
                )
            )
    return rows


def stacking_rows(settings: Settings, deadline: float) -> list[Row]:
    """k seeds of one configuration as one stacked model against one after another (seed packing)."""
    rows: list[Row] = []
    device = settings.device
    cases = (
        ("LeNet5/MNIST-size", WORKLOADS[0], *settings.stacked[0], STACKING_TARGET),
        ("ResNet18/CIFAR10-size", WORKLOADS[2], *settings.stacked[1], None),
    )
    for label, workload, seeds, images, target in cases:
        if time.perf_counter() > deadline:
            rows.append(
                Row(
                    SECTION,
                    f"{label}: {seeds} seeds stacked vs one after another",
                    "skipped: time budget",
                    target=target,
                )
            )
            continue
        data = synthetic(workload, images, device)
        batch = 128 if device == "cuda" else max(settings.batches)
        config = TrainConfig(
            model=workload.model,
            dataset=workload.dataset,
            batch_size=batch,
            epochs=1,
            device=device,
            threads=None if device == "cuda" else 1,
        )
        repeats = 3 if device == "cuda" else 1
        rows += compare_packing(
            label, config, list(range(seeds)), data, 1, repeats, device, target, SECTION
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="everything tiny, on the CPU (checks the script)"
    )
    parser.add_argument("--budget-s", type=float, help="start no new item after this many seconds")
    parser.add_argument("--out", help="also write the table (markdown) to this file")
    parser.add_argument(
        "--doc", action="store_true", help="also put the table into docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else FULL
    if args.budget_s is not None:
        settings = replace(settings, budget_s=args.budget_s)
    if settings.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA GPU here; run with --smoke to check the script on the CPU")
    start = time.perf_counter()
    rows = run(settings)
    if args.smoke:  # tiny CPU figures say nothing about the GPU targets
        rows = [
            replace(r, target=None, note=f"{r.note}; GPU target {r.target}".lstrip("; "))
            if r.target
            else r
            for r in rows
        ]
    table = format_table(rows)
    kind = "smoke run: tiny sizes on the CPU, not GPU figures" if args.smoke else "full run"
    facts, seconds = format_facts(machine_facts()), time.perf_counter() - start
    text = f"{table}\n\n{facts}; {kind}; {seconds:.0f} s"
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.doc:
        command = "python benchmarks/gpu.py" + (" --smoke" if args.smoke else "")
        block = (
            f"Measured with `{command}` on {time.strftime('%Y-%m-%d')} in {seconds:.0f} s ({kind}).\n"
            f"Machine: {facts}.\n\n{table}"
        )
        write_between_markers(REPO_ROOT / "docs" / "benchmarks.md", GPU_BEGIN, GPU_END, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
