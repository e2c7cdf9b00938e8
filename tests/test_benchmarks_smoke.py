"""The benchmarks run and print their tables (tiny sizes, no timing assertions), and the training step
keeps its performance contract: no host sync per step, one batch shape for a compiled model."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from taso_tune.training.data.sets import PAD_LABEL, DatasetInfo, DeviceBatches, random_crop_flip
from taso_tune.training.run import Run, TrainConfig


@pytest.fixture(autouse=True, scope="module")
def no_process_left_behind():
    """The GPU benchmark's packing workers are spawned (CUDA needs it), which starts
    multiprocessing's resource tracker: a helper process that lives as long as its parent, here the
    test runner. Stop it once this module is done, so the suite leaves no process behind."""
    yield
    from multiprocessing import resource_tracker

    resource_tracker._resource_tracker._stop()


REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def _run_script(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _table_rows(output: str, section: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in output.splitlines()
        if line.startswith(f"| {section} |")
    ]


# --- the benchmark scripts ------------------------------------------------------------------------


def test_checkpoint_cost_prints_its_table() -> None:
    out = _run_script(str(BENCHMARKS / "checkpoint_cost.py"), "--quick", timeout=300)
    rows = _table_rows(out, "checkpoint")
    assert [row[1].split(",")[0] for row in rows] == ["vgg19", "resnet18"]
    sizes = [float(row[3].removesuffix(" MB")) for row in rows]
    assert sizes[0] > sizes[1] > 0  # VGG19 (20M parameters) outweighs ResNet18 (11M)


@pytest.mark.slow
def test_gpu_benchmark_smoke_prints_its_table() -> None:
    # every row, however busy the machine (the smoke run's own budget would skip the last ones)
    out = _run_script(str(BENCHMARKS / "gpu.py"), "--smoke", "--budget-s", "600", timeout=600)
    rows = _table_rows(out, "gpu")
    measures = [row[1] for row in rows]
    for model in ("lenet5", "vgg19", "resnet18"):
        for mode in ("fp32", "bf16+cl", "bf16+cl+compile"):
            assert any(m.startswith(f"{model} epoch") and m.endswith(mode) for m in measures), (
                model,
                mode,
            )
    assert any("trials at once" in m for m in measures)
    assert any(m.startswith("dense matmul rate, bf16") for m in measures)
    stacking = [row for row in rows if "seeds stacked vs one after another" in row[1]]
    assert [row[1].split(":")[0] for row in stacking] == [
        "LeNet5/MNIST-size",
        "ResNet18/CIFAR10-size",
    ]
    assert all(float(row[4]) > 0 for row in stacking)  # speed-up measured
    # device memory per packing on CUDA only; the CPU's is the memory section's, a process per side
    assert sum("peak memory" in m for m in measures) == 0
    floors = [row for row in rows if row[3].endswith("FLOP floor")]
    assert len(floors) == 12 and all(float(row[4]) > 0 for row in floors)
    assert "smoke run" in out


def _gpu_benchmark():
    """``benchmarks/gpu.py`` as a module (it imports its neighbours by name)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import gpu

    return gpu


def test_gpu_benchmark_a_dead_packing_worker_fails_at_once() -> None:
    gpu = _gpu_benchmark()
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="a packing worker exited with code 1"):
        gpu.packed_seconds(2, -1, 128, 1, "cpu")  # -1 images: each worker raises as it starts
    assert time.monotonic() - start < gpu.PACKING_WAIT_S / 3  # its exit code, not the long wait


@pytest.mark.slow
def test_gpu_benchmark_a_failing_item_is_a_row_and_the_rest_still_run() -> None:
    gpu = _gpu_benchmark()
    settings = dataclasses.replace(
        gpu.SMOKE, batches=(8,), budget_s=600, packing_images=-1, stacked=((2, -1), (2, 32))
    )
    emitted: list = []
    rows = gpu.run(settings, emitted.append)
    assert emitted == rows
    measures = [row.measure for row in rows]
    assert measures[:2] == ["preflight: NVIDIA driver", "preflight: compiler for torch.compile"]
    by_measure = {row.measure: row.value for row in rows}
    packing = by_measure["LeNet5 trials at once, 2 processes vs 1"]
    assert packing.startswith("failed: RuntimeError: a packing worker exited with code"), packing
    assert by_measure["LeNet5/MNIST-size: 2 seeds stacked vs one after another"].startswith(
        "failed: "
    )
    # the items after the failures ran
    assert any(m.startswith("ResNet18/CIFAR10-size: 2 seeds stacked") for m in measures)
    assert measures[-1] == "resnet18 epoch, batch 8, bf16+cl+compile"


def test_gpu_benchmark_writes_its_table_after_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = _gpu_benchmark()
    out = tmp_path / "table.md"
    seen: list[str] = []

    def cut_short(settings, emit):  # two rows, then the run is killed
        for measure in ("first", "second"):
            emit(gpu.Row(gpu.SECTION, measure, "1 s"))
            seen.append(out.read_text())
        raise KeyboardInterrupt

    monkeypatch.setattr(gpu, "run", cut_short)
    with pytest.raises(KeyboardInterrupt):
        gpu.main(["--smoke", "--out", str(out)])
    assert "| gpu | first | 1 s |" in seen[0] and "in progress: 1 rows so far" in seen[0]
    assert "| gpu | second | 1 s |" in seen[1] and "in progress: 2 rows so far" in seen[1]
    assert out.read_text() == seen[1]  # what was measured stays written


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_sweep_benchmark_smoke_prints_its_row() -> None:
    out = _run_script(
        str(BENCHMARKS / "gpu_sweep.py"), "--smoke", timeout=400
    )  # two tiny sweeps on Ray
    (row,) = _table_rows(out, "gpu sweep")
    assert "seeds stacked vs a trial per seed" in row[1] and float(row[4]) > 0


@pytest.mark.slow
def test_seed_packing_benchmark_quick_prints_its_table() -> None:
    out = _run_script(str(BENCHMARKS / "seed_packing.py"), "--quick")
    rows = _table_rows(out, "6 seed packing")
    assert len(rows) == 1 and rows[0][1].startswith("LeNet5/digits on the CPU: 3 seeds stacked")
    assert float(rows[0][4]) > 0


@pytest.mark.slow
def test_memory_benchmark_quick_prints_the_peak_after_the_imports() -> None:
    out = _run_script(str(BENCHMARKS / "memory.py"), "--quick")
    rows = _table_rows(out, "5 memory")
    assert len(rows) == 4
    for row in rows:
        peak, imports = float(row[2].split()[0]), float(row[3].split()[0])
        assert peak >= imports and "peak after the imports" in row[-1], row


@pytest.mark.slow
def test_input_path_benchmark_quick_prints_its_table() -> None:
    out = _run_script(str(BENCHMARKS / "input_path.py"), "--quick")
    rows = _table_rows(out, "3 input path")
    assert len(rows) == 4
    assert all(row[4] and float(row[4]) > 0 for row in rows)  # a ratio on every row
    assert {row[5] for row in rows} == {">= 5", "<= 1"}


# --- the training step's performance contract -----------------------------------------------------

#: Calls that make the host wait for the device (or copy from it) inside a training step.
SYNCING_METHODS = {"item", "cpu", "tolist", "numpy", "synchronize"}
SYNCING_BUILTINS = {"float", "int", "bool", "print"}


def _syncing_calls(function, *, loops_only: bool) -> list[str]:
    """The syncing calls in ``function`` (in the bodies of its ``for`` loops only, if asked): a static check."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    scopes = (
        [node for node in ast.walk(tree) if isinstance(node, ast.For)] if loops_only else tree.body
    )
    found = []
    for scope in scopes:
        statements = scope.body if loops_only else [scope]
        for node in (n for stmt in statements for n in ast.walk(stmt) if isinstance(n, ast.Call)):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in SYNCING_METHODS:
                found.append(f".{func.attr}() at line {node.lineno}")
            elif isinstance(func, ast.Name) and func.id in SYNCING_BUILTINS:
                found.append(f"{func.id}() at line {node.lineno}")
    return found


@pytest.mark.parametrize(
    ("function", "loops_only"),
    [
        (Run.train_epoch, True),
        (Run.evaluate, True),
        (DeviceBatches.__iter__, True),
        (random_crop_flip, False),
    ],
    ids=["Run.train_epoch", "Run.evaluate", "DeviceBatches.__iter__", "random_crop_flip"],
)
def test_step_code_has_no_host_sync(function, loops_only: bool) -> None:
    # a supplement to the CUDA test below, for machines without a GPU
    assert _syncing_calls(function, loops_only=loops_only) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_epoch_syncs_with_the_host_only_at_its_end() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    from gpu import WORKLOADS, count_host_syncs, make_run, synthetic

    lenet = WORKLOADS[0]
    counts = []
    for images in (1024, 4096):  # 8 and 32 steps: the sync count must not grow with the steps
        run = make_run(lenet, synthetic(lenet, images, "cuda"), 128, "cuda")
        run.train_epoch()  # first-call set-up (cuDNN, allocator) is not the steady state
        counts.append(count_host_syncs(run.train_epoch))
    assert counts[0] == counts[1], counts  # none per step
    assert counts[0] <= 4, counts  # the two reads at the end of the epoch, and per-epoch set-up


def test_padded_last_batch_keeps_metrics_and_shapes() -> None:
    info = DatasetInfo("test", 1, 8, 10, (0.5,), (0.25,), augment=False)
    x = torch.randint(0, 256, (21, 1, 8, 8), dtype=torch.uint8)
    y = torch.randint(0, 10, (21,))
    plain = list(DeviceBatches(x, y, info, 8))
    padded = list(DeviceBatches(x, y, info, 8, pad_last=True))
    assert [len(yb) for _, yb in padded] == [8, 8, 8]
    assert (padded[-1][1][5:] == PAD_LABEL).all()
    assert torch.equal(torch.cat([xb for xb, _ in padded])[:21], torch.cat([xb for xb, _ in plain]))
    # what Run.evaluate sums: the padding counts in neither the loss nor the accuracy
    logits = torch.randn(24, 10)
    labels = torch.cat([yb for _, yb in padded])
    assert F.cross_entropy(
        logits, labels, reduction="sum", ignore_index=PAD_LABEL
    ).item() == pytest.approx(F.cross_entropy(logits[:21], y, reduction="sum").item())
    assert (logits.argmax(1) == labels).sum() == (logits[:21].argmax(1) == y).sum()


def test_drop_last_wins_over_pad_last() -> None:
    info = DatasetInfo("test", 1, 8, 10, (0.5,), (0.25,), augment=False)
    x, y = torch.zeros(21, 1, 8, 8, dtype=torch.uint8), torch.arange(21) % 10
    batches = DeviceBatches(x, y, info, 8, drop_last=True, pad_last=True)
    assert [len(yb) for _, yb in batches] == [8, 8]


def test_compiled_run_pads_evaluation(digits_data) -> None:
    # the evaluation batches a compiled model sees all have one shape (no compile here: the check is
    # on the batches Run.evaluate builds, through the same flag)
    config = TrainConfig(model="lenet5", dataset="digits", epochs=1, device="cpu", threads=1)
    run = Run(config, digits_data)
    loss, acc = run.evaluate(run.data.x_test, run.data.y_test)
    run.config = dataclasses.replace(config, compile=True)  # evaluate pads when the run is compiled
    padded_loss, padded_acc = run.evaluate(run.data.x_test, run.data.y_test)
    assert padded_acc == acc and padded_loss == pytest.approx(loss, rel=1e-5)
