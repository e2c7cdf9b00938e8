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
(``checkpoint_every`` 5) split it into report and checkpoint.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from common import Row, Target, add_repo_to_path, interleaved, median, section_main

add_repo_to_path()

from taso_tune.data import load_dataset  # noqa: E402
from taso_tune.train import TrainConfig, fit  # noqa: E402

SECTION = "1 trial overhead"
TARGET = Target("<=", 1.05)


def steady(records: list[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over every epoch but the first."""
    return statistics.fmean(r[key] for r in records[1:])


def fit_per_epoch(epochs: int) -> dict[str, float]:
    """fit() alone: mean wall seconds between records and mean epoch_seconds (epochs 2..N)."""
    config = TrainConfig(model="lenet5", dataset="digits", optimizer="taso", epochs=epochs, batch_size=64,
                         device="cpu", threads=1)  # fmt: skip
    data = load_dataset("digits")
    stamps, records = [], []
    for record in fit(config, data):
        stamps.append(time.perf_counter())
        records.append(record)
    return {"wall": (stamps[-1] - stamps[0]) / (epochs - 1), "epoch": steady(records, "epoch_seconds")}


def trial_per_epoch(epochs: int, checkpoint_every: int) -> dict[str, float]:
    """One trial through run_sweep: mean time_this_iter_s and epoch_seconds (epochs 2..N), and the
    loop's overhead on epochs with and without a checkpoint."""
    from sweeps import one_trial_spec, run_quiet, storage

    with storage() as root:
        run = run_quiet(one_trial_spec(epochs, checkpoint_every), root, f"ck{checkpoint_every}")
    (records,) = run.trials
    overhead = {True: [], False: []}
    for r in records[1:]:
        with_checkpoint = r["epoch"] % checkpoint_every == 0 or r["epoch"] == epochs
        overhead[with_checkpoint].append(r["time_this_iter_s"] - r["epoch_seconds"])
    return {
        "wall": steady(records, "time_this_iter_s"),
        "epoch": steady(records, "epoch_seconds"),
        "report": statistics.fmean(overhead[False]) if overhead[False] else float("nan"),
        "report+checkpoint": statistics.fmean(overhead[True]),
        "start": run.wall_seconds - records[-1]["time_total_s"],
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
        },
        repeats,
    )
    stop_ray()

    def paired(name: str, key: str, base_key: str) -> float:
        # one ratio per round (both sides ran minutes apart at most), then the median over rounds
        return median([t[key] / f[base_key] for t, f in zip(results[name], results["fit"], strict=True)])

    def med(name: str, key: str) -> float:
        return median([r[key] for r in results[name]])

    n = f"n={repeats}, {epochs} epochs, epochs 2..{epochs}"
    fit_wall, fit_epoch = med("fit", "wall"), med("fit", "epoch")
    rows = [
        Row(SECTION, "epoch_seconds reported in a trial (ck 1) vs fit()", f"{med('ck1', 'epoch'):.3f} s",
            f"{fit_epoch:.3f} s", paired("ck1", "epoch", "epoch"), note=f"training + evaluation only; {n}"),
    ]  # fmt: skip
    for every in (1, 5):
        name = f"ck{every}"
        rows.append(Row(SECTION, f"wall per epoch in a trial, checkpoint_every {every}", f"{med(name, 'wall'):.3f} s",
                        f"{fit_wall:.3f} s (fit)", paired(name, "wall", "wall"), TARGET,
                        note="incl. metrics, gauges, torch.save, tune.report; " + n))  # fmt: skip
    rows += [
        Row(SECTION, "loop overhead per epoch: tune.report", f"{med('ck5', 'report') * 1e3:.1f} ms",
            f"{fit_epoch:.3f} s (epoch)", med("ck5", "report") / fit_epoch, note="ck 5, epochs without a checkpoint"),
        Row(SECTION, "loop overhead per epoch: torch.save + tune.report(checkpoint)",
            f"{med('ck1', 'report+checkpoint') * 1e3:.1f} ms", f"{fit_epoch:.3f} s (epoch)",
            med("ck1", "report+checkpoint") / fit_epoch, note="ck 1, every epoch"),
        Row(SECTION, "trial start + end (run_sweep wall - trial time_total_s)", f"{med('ck1', 'start'):.2f} s",
            note="Tuner set-up, actor start, first report, teardown; once per sweep, not per epoch"),
    ]  # fmt: skip
    return rows


if __name__ == "__main__":
    section_main(run, __doc__.splitlines()[0])
