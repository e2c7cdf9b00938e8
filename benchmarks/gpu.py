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
taso_tune modules that do not import Ray are used.

A GPU run is scarce, so nothing in it may cost the rest: a preflight first reports the NVIDIA driver
(against the CUDA build of torch), the GPU's compute mode (an exclusive mode rules out the packing
rows) and the compiler ``torch.compile`` needs (without one the compile rows are skipped); every
item is wrapped, so one that raises becomes a ``failed: reason`` row and the next starts; the
packing workers' exit codes are watched, so a worker that dies fails its row at once; and the table
(``--out``, ``--doc``) is written again after every row, so a run cut short keeps what it measured.
No new item starts after ``--budget-s`` seconds (default 330: the whole run stays under 8 minutes
on one H100/H200); the items left are printed as skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import queue
import shutil
import subprocess
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
#: Seconds the packing workers may take to start, meet and finish before they count as failed.
PACKING_WAIT_S = 180.0


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
    barrier.wait(timeout=PACKING_WAIT_S)  # a sibling that died breaks the barrier, not a hang
    start = time.monotonic()  # one clock for every process (CLOCK_MONOTONIC)
    for _ in range(epochs):
        run.train_epoch()
    results.put((start, time.monotonic()))


def packed_seconds(
    processes: int, images: int | None, batch: int, epochs: int, device: str
) -> float:
    """Wall seconds from the common start to the last of ``processes`` trials finishing.

    The workers' exit codes are watched while waiting: one that dies fails the measurement at
    once (with its exit code), and the others are stopped; none outlives the call."""
    ctx = torch.multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=packing_worker, args=(images, batch, epochs, device, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    spans: list[tuple[float, float]] = []
    deadline = time.monotonic() + PACKING_WAIT_S
    try:
        while len(spans) < processes:
            try:
                spans.append(results.get(timeout=0.5))
                continue
            except queue.Empty:
                pass
            failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if failed:
                raise RuntimeError(f"a packing worker exited with code {failed[0]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"packing workers still running after {PACKING_WAIT_S:.0f} s")
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
                worker.join()
    return max(end for _, end in spans) - min(start for start, _ in spans)


# --- preflight --------------------------------------------------------------------------------


def _nvidia_smi(fields: str) -> list[str]:
    """``nvidia-smi --query-gpu=FIELDS`` of the first GPU; [] where it is missing or fails."""
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = done.stdout.strip().splitlines() if done.returncode == 0 else []
    return [part.strip() for part in lines[0].split(",")] if lines else []


def preflight(device: str) -> tuple[list[Row], dict[str, str]]:
    """Rows on the NVIDIA driver, the GPU's compute mode and the compiler ``torch.compile`` needs,
    before any measurement; and the items they rule out, each with the reason."""
    rows: list[Row] = []
    blocked: dict[str, str] = {}
    cuda = torch.version.cuda
    need = {13: 580, 12: 525, 11: 450}.get(int(cuda.split(".")[0])) if cuda else None
    if device == "cuda":
        driver, mode, name = (_nvidia_smi("driver_version,compute_mode,name") + ["", "", ""])[:3]
        major = int(driver.split(".")[0]) if driver[:1].isdigit() else None
        ok = major is None or need is None or major >= need
        rows.append(
            Row(
                SECTION,
                "preflight: NVIDIA driver",
                driver or "unknown (no nvidia-smi)",
                f"torch {torch.__version__} (CUDA {cuda}) needs >= {need}",
                note=f"{name}; {'ok' if ok else 'too old: CUDA cannot start'}",
            )
        )
        rows.append(
            Row(
                SECTION,
                "preflight: GPU compute mode",
                mode or "unknown",
                note="Default lets the packing rows put several processes on the GPU",
            )
        )
        if mode and mode.lower() not in ("default", "[n/a]"):
            blocked["packing"] = f"compute mode {mode} admits one process per GPU"
    else:
        rows.append(Row(SECTION, "preflight: NVIDIA driver", "n/a on CPU"))
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    triton = importlib.util.find_spec("triton") is not None
    rows.append(
        Row(
            SECTION,
            "preflight: compiler for torch.compile",
            compiler or "none",
            f"triton {'present' if triton else 'missing'}",
        )
    )
    if compiler is None:
        blocked["compile"] = "no C compiler (torch.compile's inductor needs one)"
    elif device == "cuda" and not triton:
        blocked["compile"] = "triton is not installed (torch.compile on CUDA needs it)"
    return rows, blocked


def failed(measure: str, err: BaseException, target: Target | None = None) -> Row:
    """The row of an item that raised: ``failed: reason``, one line."""
    reason = (str(err).strip().splitlines() or [""])[0][:160]
    return Row(SECTION, measure, f"failed: {type(err).__name__}: {reason}", target=target)


# --- the table --------------------------------------------------------------------------------


def run(settings: Settings, emit: Callable[[Row], None] = lambda row: None) -> list[Row]:
    """Every row of the table, each passed to ``emit`` as soon as it is measured. An item that raises
    becomes a ``failed: reason`` row and the next one starts; none starts after the time budget."""
    deadline = time.perf_counter() + settings.budget_s
    device = settings.device
    rows: list[Row] = []

    def add(*new: Row) -> None:
        for row in new:
            rows.append(row)
            emit(row)

    def attempt(
        measure: str, measure_rows: Callable[[], list[Row]], target: Target | None = None
    ) -> None:
        if time.perf_counter() > deadline:
            add(Row(SECTION, measure, "skipped: time budget", target=target))
            return
        try:
            new = measure_rows()
        except Exception as err:  # one failing item must not cost the rows of the others
            if device == "cuda":
                torch.cuda.empty_cache()
            add(failed(measure, err, target))
            return
        add(*new)

    checks, blocked = preflight(device)
    add(*checks)

    rates: dict[str, float] = {}

    def rate_row(dtype: torch.dtype, label: str) -> list[Row]:
        rates[label] = matmul_tflops(dtype, device, settings.matmul_size)
        return [
            Row(
                SECTION,
                f"dense matmul rate, {label}",
                f"{rates[label]:.1f} TFLOP/s",
                note=f"{settings.matmul_size}^2 matrices",
            )
        ]

    for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        attempt(f"dense matmul rate, {label}", lambda d=dtype, n=label: rate_row(d, n))
    flops = {w.model: flops_per_image(w) for w in WORKLOADS}  # meta tensors: no device involved

    def epoch_row(workload: Workload, batch: int, mode: str) -> list[Row]:
        measure = f"{workload.model} epoch, batch {batch}, {mode}"
        target = TARGETS.get((workload.model, batch)) if mode != "fp32" else None
        data = synthetic(workload, settings.images, device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        run_ = make_run(workload, data, batch, device, **MODES[mode])
        seconds, first = epoch_seconds(run_, settings.warmup_epochs, settings.timed_epochs)
        images = len(run_.train_batches) * batch
        rate = rates.get("bf16" if mode != "fp32" else "fp32")
        floor = flops[workload.model] * images / (rate * 1e12) if rate else None
        peak = (
            f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; "
            if device == "cuda"
            else ""
        )
        return [
            Row(
                SECTION,
                measure,
                f"{seconds:.3g} s",
                f"{floor:.3g} s FLOP floor" if floor else "no FLOP floor (matmul rate failed)",
                seconds / floor if floor else None,
                target,
                f"{peak}{flops[workload.model] / 1e6:,.1f} MFLOP/image; first epoch {first:.3g} s",
                judged=seconds,
            )
        ]

    def epoch_item(workload: Workload, batch: int, mode: str) -> None:
        measure = f"{workload.model} epoch, batch {batch}, {mode}"
        target = TARGETS.get((workload.model, batch)) if mode != "fp32" else None
        attempt(measure, lambda: epoch_row(workload, batch, mode), target)

    for workload in WORKLOADS:
        for batch in settings.batches:
            for mode in ("fp32", "bf16+cl"):
                epoch_item(workload, batch, mode)

    def sync_row() -> list[Row]:
        lenet = WORKLOADS[0]
        probe = make_run(lenet, synthetic(lenet, settings.images, device), 128, device)
        probe.train_epoch()
        syncs = count_host_syncs(probe.train_epoch)
        return [
            Row(
                SECTION,
                "host syncs in one training epoch (LeNet5, batch 128)",
                f"{syncs}",
                f"{len(probe.train_batches)} steps",
                target=Target("<=", 4),
                judged=syncs,
                note="2 expected: loss and accuracy read at the end; a per-step sync shows as >= steps",
            )
        ]

    if device == "cuda":
        attempt("host syncs in one training epoch (LeNet5, batch 128)", sync_row)
    else:
        add(Row(SECTION, "host syncs in one training epoch", "n/a on CPU"))

    packing = f"LeNet5 trials at once, {settings.packed} processes vs 1"

    def packing_row() -> list[Row]:
        epochs = settings.timed_epochs
        alone = packed_seconds(1, settings.packing_images, 128, epochs, device)
        packed = packed_seconds(settings.packed, settings.packing_images, 128, epochs, device)
        return [
            Row(
                SECTION,
                packing,
                f"{packed:.2f} s for {settings.packed} x {epochs} epochs",
                f"{alone:.2f} s for 1 x {epochs}",
                settings.packed * alone / packed,
                PACKING_TARGET,
                "throughput speed-up = n x t(alone) / t(n at once); batch 128",
            )
        ]

    if "packing" in blocked:
        add(Row(SECTION, packing, f"skipped: {blocked['packing']}", target=PACKING_TARGET))
    else:
        attempt(packing, packing_row, PACKING_TARGET)

    for label, workload, seeds, images, target in stacking_cases(settings):
        measure = f"{label}: {seeds} seeds stacked vs one after another"
        attempt(
            measure,
            lambda w=workload, k=seeds, n=images, t=target, name=label: stacking_rows(
                settings, name, w, k, n, t
            ),
            target,
        )

    for workload in WORKLOADS:
        batch = max(settings.batches)
        measure = f"{workload.model} epoch, batch {batch}, bf16+cl+compile"
        if not settings.compile:
            add(Row(SECTION, measure, "skipped: --smoke"))
        elif "compile" in blocked:
            add(Row(SECTION, measure, f"skipped: {blocked['compile']}"))
        else:
            epoch_item(workload, batch, "bf16+cl+compile")
    return rows


def stacking_cases(settings: Settings) -> tuple[tuple, ...]:
    """(label, workload, seeds, images, target) of each seed-packing comparison."""
    return (
        ("LeNet5/MNIST-size", WORKLOADS[0], *settings.stacked[0], STACKING_TARGET),
        ("ResNet18/CIFAR10-size", WORKLOADS[2], *settings.stacked[1], None),
    )


def stacking_rows(
    settings: Settings,
    label: str,
    workload: Workload,
    seeds: int,
    images: int | None,
    target: Target | None,
) -> list[Row]:
    """k seeds of one configuration as one stacked model against one after another (seed packing)."""
    device = settings.device
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
    return compare_packing(
        label, config, list(range(seeds)), data, 1, repeats, device, target, SECTION
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="everything tiny, on the CPU (checks the script)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        help=f"start no new item after this many seconds (default {FULL.budget_s:g}: the whole "
        "run stays under 8 minutes on one H100/H200)",
    )
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
    kind = "smoke run: tiny sizes on the CPU, not GPU figures" if args.smoke else "full run"
    facts = format_facts(machine_facts())
    shown: list[Row] = []

    def shown_row(row: Row) -> Row:
        if args.smoke and row.target:  # tiny CPU figures say nothing about the GPU targets
            return replace(
                row, target=None, note=f"{row.note}; GPU target {row.target}".lstrip("; ")
            )
        return row

    def write(done: bool) -> str:
        seconds = time.perf_counter() - start
        state = "" if done else f"; in progress: {len(shown)} rows so far"
        table = format_table(shown)
        if args.out:
            Path(args.out).write_text(f"{table}\n\n{facts}; {kind}; {seconds:.0f} s{state}\n")
        if args.doc:
            command = "python benchmarks/gpu.py" + (" --smoke" if args.smoke else "")
            block = (
                f"Measured with `{command}` on {time.strftime('%Y-%m-%d')} in {seconds:.0f} s "
                f"({kind}{state}).\nMachine: {facts}.\n\n{table}"
            )
            write_between_markers(REPO_ROOT / "docs" / "benchmarks.md", GPU_BEGIN, GPU_END, block)
        return f"{table}\n\n{facts}; {kind}; {seconds:.0f} s"

    def emit(row: Row) -> None:  # every row is kept at once: a run cut short keeps what it measured
        shown.append(shown_row(row))
        write(done=False)

    run(settings, emit)
    print(write(done=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
