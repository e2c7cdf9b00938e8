"""Trial overhead: seconds per epoch inside a Ray Tune trial against ``fit()`` alone.

The same configuration (LeNet5 on digits, TASO, batch 64, 20 epochs, 1 thread) runs three ways,
interleaved round by round: ``fit()`` in this process, and a one-trial sweep (1 CPU per trial) with
``checkpoint_every`` 1 and 5. Per epoch we compare

* ``epoch_seconds``: what the trial reports (training + evaluation), against the same figure of fit();
* wall per epoch: the trial's ``time_this_iter_s`` (time between two reports, so it includes building
  the metrics, the live gauges, ``torch.save`` of the checkpoint and ``tune.report``) against the time
  between two records of fit().

The first epoch (which builds the run) is left out of both. Inside a trial, wall per epoch minus
``epoch_seconds`` is the loop's own overhead; epochs with and without a checkpoint
(``checkpoint_every`` 5) split it into report and checkpoint. Two more figures say where the rest
goes: the share of a core the trial's worker process got while training (psutil samples of its CPU
time; for fit(), its thread time) and the CPU Ray's own processes used meanwhile (driver, raylet,
GCS, dashboard), which compete with the trial for the machine's cores.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import psutil
from common import Row, Target, add_repo_to_path, interleaved, median, section_main

add_repo_to_path()

from taso_tune.training.data.sets import load_dataset  # noqa: E402
from taso_tune.training.run import TrainConfig, fit  # noqa: E402

SECTION = "1 trial overhead"
TARGET = Target("<=", 1.03)
#: The time-based lever: a due checkpoint is skipped while the last one is younger than this
MIN_SECONDS = 2.0


def steady(records: list[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over every epoch but the first."""
    return statistics.fmean(r[key] for r in records[1:])


def fit_per_epoch(epochs: int) -> dict[str, float]:
    """fit() alone: mean wall seconds between records and mean epoch_seconds (epochs 2..N)."""
    config = TrainConfig(
        model="lenet5",
        dataset="digits",
        optimizer="taso",
        epochs=epochs,
        batch_size=64,
        device="cpu",
        threads=1,
    )
    data = load_dataset("digits")
    stamps, cpu, records = [], [], []
    for record in fit(config, data):
        stamps.append(time.perf_counter())
        cpu.append(time.thread_time())
        records.append(record)
    wall = stamps[-1] - stamps[0]
    return {
        "wall": wall / (epochs - 1),
        "epoch": steady(records, "epoch_seconds"),
        "core share": (cpu[-1] - cpu[0]) / wall,
    }


class WorkerCPU(threading.Thread):
    """Samples the CPU seconds of the trial's worker process (found by its name) while a sweep runs."""

    def __init__(self, period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.period, self.samples = period, []
        self._done = threading.Event()

    def run(self) -> None:
        worker = None
        while not self._done.wait(self.period):
            try:
                if worker is None:
                    worker = next(
                        (
                            p
                            for p in psutil.Process().children(recursive=True)
                            if "TrialActor" in " ".join(p.cmdline())
                        ),
                        None,
                    )
                if worker is not None:
                    times = worker.cpu_times()
                    self.samples.append((time.perf_counter(), times.user + times.system))
            except psutil.Error:  # the worker ended
                worker = None

    def stop(self) -> None:
        self._done.set()
        self.join()

    def core_share(self) -> float:
        """CPU seconds per wall second over the second half of the worker's busy time (training)."""
        busy = [s for i, s in enumerate(self.samples) if i == 0 or s[1] > self.samples[i - 1][1]]
        if len(busy) < 4:
            return float("nan")
        (t0, c0), (t1, c1) = busy[len(busy) // 2], busy[-1]
        return (c1 - c0) / (t1 - t0)


def trial_per_epoch(
    epochs: int, checkpoint_every: int, min_seconds: float = 0.0
) -> dict[str, float]:
    """One trial through run_sweep: mean time_this_iter_s and epoch_seconds (epochs 2..N), the loop's
    overhead on epochs with and without a checkpoint, and the share of a core the worker got."""
    from sweeps import one_trial_spec, run_quiet, storage

    sampler = WorkerCPU()
    sampler.start()
    with storage() as root:
        run = run_quiet(
            one_trial_spec(epochs, checkpoint_every, min_seconds), root, f"ck{checkpoint_every}"
        )
    sampler.stop()
    (records,) = run.trials
    overhead = {True: [], False: []}
    for r in records[1:]:
        with_checkpoint = (
            r["epoch"] % checkpoint_every == 0 or r["epoch"] == epochs
        )  # (min_seconds 0)
        overhead[with_checkpoint].append(r["time_this_iter_s"] - r["epoch_seconds"])
    return {
        "wall": steady(records, "time_this_iter_s"),
        "epoch": steady(records, "epoch_seconds"),
        "report": statistics.fmean(overhead[False]) if overhead[False] else float("nan"),
        "report+checkpoint": statistics.fmean(overhead[True]),
        "start": run.wall_seconds - records[-1]["time_total_s"],
        "ray cpu": run.ray_cpu_seconds / epochs,
        "core share": sampler.core_share(),
    }


def run(quick: bool = False) -> list[Row]:
    from sweeps import start_ray, stop_ray

    epochs, repeats = (4, 1) if quick else (20, 3)
    start_ray()
    results = interleaved(
        {
            "fit": lambda: fit_per_epoch(epochs),
            "ck1": lambda: trial_per_epoch(epochs, 1),
            "ck5": lambda: trial_per_epoch(epochs, 5),
            "ck1-2s": lambda: trial_per_epoch(epochs, 1, MIN_SECONDS),
        },
        repeats,
    )
    stop_ray()

    def paired(name: str, key: str, base_key: str) -> float:
        # one ratio per round (both sides ran minutes apart at most), then the median over rounds
        return median(
            [t[key] / f[base_key] for t, f in zip(results[name], results["fit"], strict=True)]
        )

    def med(name: str, key: str) -> float:
        return median([r[key] for r in results[name]])

    n = f"n={repeats}, {epochs} epochs, epochs 2..{epochs}"
    fit_wall, fit_epoch = med("fit", "wall"), med("fit", "epoch")
    rows = [
        Row(
            SECTION,
            "epoch_seconds reported in a trial (ck 1) vs fit()",
            f"{med('ck1', 'epoch'):.3f} s",
            f"{fit_epoch:.3f} s",
            paired("ck1", "epoch", "epoch"),
            note=f"training + evaluation only; {n}",
        ),
    ]
    for name, label in (
        ("ck1", "checkpoint_every 1"),
        ("ck5", "checkpoint_every 5"),
        ("ck1-2s", f"checkpoint_every 1, checkpoint_min_seconds {MIN_SECONDS:g}"),
    ):
        rounds = [t["wall"] / f["wall"] for t, f in zip(results[name], results["fit"], strict=True)]
        rows.append(
            Row(
                SECTION,
                f"wall per epoch in a trial, {label}",
                f"{med(name, 'wall'):.3f} s",
                f"{fit_wall:.3f} s (fit)",
                paired(name, "wall", "wall"),
                TARGET,
                note=f"incl. metrics, gauges, torch.save, tune.report; {n}; rounds "
                + ", ".join(f"{r:.2f}" for r in rounds),
            )
        )

    def per_epoch(name: str, key: str) -> str:
        seconds = med(name, key)
        return f"{seconds * 1e3:.1f} ms ({seconds / fit_epoch:.1%} of an epoch)"

    rows += [
        Row(
            SECTION,
            "loop overhead per epoch: metrics, gauges, tune.report",
            per_epoch("ck5", "report"),
            note="checkpoint_every 5, the epochs without a checkpoint",
        ),
        Row(
            SECTION,
            "loop overhead per epoch: the same + torch.save + checkpoint upload",
            per_epoch("ck1", "report+checkpoint"),
            note="checkpoint_every 1",
        ),
        Row(
            SECTION,
            "share of a core the training got: trial worker vs fit()",
            f"{med('ck1', 'core share'):.2f}",
            f"{med('fit', 'core share'):.2f}",
            paired("ck1", "core share", "core share"),
            note="CPU s per wall s while training (worker: psutil samples, ck 1; fit: thread time)",
        ),
        Row(
            SECTION,
            "Ray's own CPU per epoch: driver (results, snapshots), raylet, GCS, dashboard",
            per_epoch("ck1", "ray cpu"),
            note="whole one-trial sweep (set-up included) / epochs; ck 1",
        ),
        Row(
            SECTION,
            "trial start and end (sweep wall - trial time_total_s)",
            f"{med('ck1', 'start'):.2f} s",
            note="Tuner set-up, worker start, first epoch's run build, teardown; once per sweep",
        ),
    ]
    return rows


if __name__ == "__main__":
    section_main(run, __doc__.splitlines()[0])
