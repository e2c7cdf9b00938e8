"""Sweep overhead: the quickstart sweep on Ray Tune against the same trials run by ``fit()`` in a loop.

What is compared, exactly:

* Ray: ``ray.init`` + ``run_sweep`` of ``search_spaces/quickstart.yaml`` with ``scheduler: none`` and
  3 epochs (every trial runs to the end, so both sides train the same epochs; 3 is the quickstart's
  ASHA grace period, the length most of its trials run) + ``ray.shutdown``.
  1 CPU and 1 torch thread per trial, ``max_concurrent: 2``: two trials at once on two cores.
  A trial is one configuration with all its seeds, trained side by side (13 trials of 3 seeds).
* fit(): the same training runs (every configuration x seed, same seeds, same threads) one after
  another in this process, the data loaded once, as the sweep's driver does.

Two more Ray sides, the same sweep with levers pulled: ``reused`` runs trial after trial in the same
actor processes (``reuse_actors: true``; by default each trial gets a new actor, named after it in
the Ray dashboard), and ``stacked`` reuses actors and trains each trial's 3 seeds as one stacked
model (``seed_packing: stacked``). The row "without ray.init + shutdown" is what a sweep that joins
an already running Ray saves at most (its connect and disconnect take about a second).

The ratio is Ray's wall over fit()'s wall. Ray's wall is then split into Ray start/stop, training
(the trials' own ``epoch_seconds``), in-trial overhead (building the run, metrics, checkpoints,
``tune.report``) and the rest of the two trial slots' time (actor start, scheduling, the driver's
result handling and experiment snapshots, and the tail when one trial is left).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from common import Row, Target, add_repo_to_path, interleaved, median, section_main

add_repo_to_path()

from taso_tune.training.data.sets import load_dataset  # noqa: E402
from taso_tune.training.run import fit  # noqa: E402
from taso_tune.tuning.trainable import LABEL_KEYS, train_config_of  # noqa: E402

SECTION = "2 sweep overhead"
#: Sweep wall over the fit() loop's with 2 trials at once: parallel efficiency >= 0.75
TARGET = Target("<=", 0.65)


@dataclass(frozen=True)
class RaySweep:
    start: float
    sweep: float
    stop: float
    training: float  # sum of the trials' epoch_seconds
    in_trial: float  # sum of (time_total_s - epoch_seconds) over trials
    slots: int
    trials: int
    ray_cpu: float  # CPU seconds of the driver, raylet, GCS and dashboard during run_sweep

    @property
    def wall(self) -> float:
        return self.start + self.sweep + self.stop

    @property
    def idle_slots(self) -> float:
        """Slot-seconds of the sweep not spent inside a trial's function."""
        return self.slots * self.sweep - self.training - self.in_trial


def ray_sweep(epochs: int, seeds: int, packing: str = "separate", reuse: bool = False) -> RaySweep:
    from sweeps import quickstart, run_quiet, start_ray, stop_ray, storage

    spec = quickstart(
        scheduler="none", epochs=epochs, seeds=seeds, seed_packing=packing, reuse_actors=reuse
    )
    stop_ray()
    with storage() as root:
        started = start_ray()
        run = run_quiet(spec, root, "quickstart-none")
        stopped = stop_ray()
    training = sum(r["epoch_seconds"] for records in run.trials for r in records)
    total = sum(records[-1]["time_total_s"] for records in run.trials)
    if run.epochs_run != len(spec.trials()) * epochs:
        raise RuntimeError(
            f"the sweep trained {run.epochs_run} epochs, not {len(spec.trials()) * epochs}"
        )
    return RaySweep(
        started,
        run.wall_seconds,
        stopped,
        training,
        total - training,
        spec.max_concurrent or 1,
        len(run.trials),
        run.ray_cpu_seconds,
    )


def fit_loop(epochs: int, seeds: int) -> float:
    """Wall seconds of every trial of the same spec run by fit(), one after another."""
    from sweeps import quickstart

    spec = quickstart(scheduler="none", epochs=epochs, seeds=seeds)
    start = time.perf_counter()
    data = load_dataset("digits")
    for trial in spec.trials():
        flat = {k: v for k, v in trial.items() if k not in LABEL_KEYS}
        for _ in fit(train_config_of(flat, cpus=spec.resources.cpus, device="cpu"), data):
            pass
    return time.perf_counter() - start


def run(quick: bool = False) -> list[Row]:
    epochs, seeds, repeats = (1, 1, 1) if quick else (3, 3, 3)
    results = interleaved(
        {
            "ray": lambda: ray_sweep(epochs, seeds),
            "fit": lambda: fit_loop(epochs, seeds),
            "reused": lambda: ray_sweep(epochs, seeds, reuse=True),
            "stacked": lambda: ray_sweep(epochs, seeds, "stacked", reuse=True),
        },
        repeats,
    )
    fits = results["fit"]
    first = results["ray"][0]
    what = f"quickstart, scheduler none, {epochs} epochs, {first.trials} trials, 1 CPU/1 thread each, n={repeats}"

    def share(seconds: float, of: float) -> str:
        return f"{seconds:.1f} s ({seconds / of:.0%})"

    def ratio(side: str, seconds=lambda r: r.wall) -> float:
        return median([seconds(r) / f for r, f in zip(results[side], fits, strict=True)])

    def wall_row(side: str, measure: str, seconds=lambda r: r.wall, note: str = what) -> Row:
        return Row(
            SECTION,
            measure,
            f"{median([seconds(r) for r in results[side]]):.1f} s",
            f"{median(fits):.1f} s",
            ratio(side, seconds),
            TARGET,
            note,
        )

    def breakdown(side: str, label: str) -> list[Row]:
        typical = sorted(results[side], key=lambda r: r.wall)[len(results[side]) // 2]
        slot_seconds, trials = typical.slots * typical.sweep, typical.trials
        return [
            Row(
                SECTION,
                f"{label}: ray.init + ray.shutdown",
                share(typical.start + typical.stop, typical.wall),
                note="share of Ray's wall (median run)",
            ),
            Row(
                SECTION,
                f"{label}: training inside trials (sum of epoch_seconds)",
                share(typical.training, slot_seconds),
                note=f"share of the {typical.slots} slots' time",
            ),
            Row(
                SECTION,
                f"{label}: in-trial overhead (imports in a new actor, run build, metrics, checkpoints)",
                share(typical.in_trial, slot_seconds),
                note=f"{typical.in_trial / trials * 1e3:.0f} ms per trial",
            ),
            Row(
                SECTION,
                f"{label}: slots idle (actor start, scheduling, driver, snapshots, tail)",
                share(typical.idle_slots, slot_seconds),
                note=f"{typical.idle_slots / trials * 1e3:.0f} ms per trial",
            ),
            Row(
                SECTION,
                f"{label}: Ray's own CPU during the sweep (driver, raylet, GCS, dashboard)",
                f"{typical.ray_cpu:.1f} s ({typical.ray_cpu / typical.sweep:.0%} of a core)",
                note="competes with the 2 trials for the 2 cores",
            ),
        ]

    return [
        wall_row(
            "ray",
            f"Ray sweep wall ({first.slots} trials at once), one actor per trial (default) vs fit() loop",
        ),
        wall_row("reused", "Ray sweep wall, actors reused (reuse_actors: true) vs fit() loop"),
        wall_row(
            "reused",
            "the same without ray.init + shutdown (the most joining a running Ray saves) vs fit()",
            seconds=lambda r: r.sweep,
        ),
        wall_row(
            "stacked",
            "Ray sweep wall, actors reused and seeds stacked (seed_packing: stacked) vs fit() loop",
            note=f"training in trials {median([r.training for r in results['stacked']]):.1f} s "
            f"(separate: {median([r.training for r in results['reused']]):.1f} s); {what}",
        ),
        Row(
            SECTION,
            "Ray slot-seconds (slots x wall), actors reused, vs fit() loop",
            f"{median([r.slots * r.wall for r in results['reused']]):.1f} s",
            f"{median(fits):.1f} s",
            ratio("reused", lambda r: r.slots * r.wall),
            note="the CPU time the sweep holds; 1.0 would be overhead-free",
        ),
        *breakdown("ray", "one actor per trial"),
        *breakdown("reused", "actors reused"),
    ]


if __name__ == "__main__":
    section_main(run, __doc__.splitlines()[0])
