"""Sweep overhead: the quickstart sweep on Ray Tune against the same trials run by ``fit()`` in a loop,
and against what a user would write instead: a plain Ray Tune function trainable, an Optuna study.

What is compared, exactly:

* Ray: ``ray.init`` + ``run_sweep`` of ``search_spaces/quickstart.yaml`` with ``scheduler: none`` and
  3 epochs (every trial runs to the end, so every side trains the same epochs; 3 is the quickstart's
  ASHA grace period) + ``ray.shutdown``.
  1 CPU and 1 torch thread per trial, ``max_concurrent: 2``: two trials at once on two cores.
  A trial is one configuration with all its seeds, trained side by side (13 trials of 3 seeds).
  ``default`` is the space as it stands (``reuse_actors: auto``, which reuses actors for trials this
  short); ``per_trial`` gives every trial an actor of its own (``reuse_actors: false``, the Ray
  dashboard then names each after its trial); ``stacked`` reuses actors and trains each trial's 3
  seeds as one stacked model (``seed_packing: stacked``). The row "without ray.init + shutdown" is
  what a sweep that joins an already running Ray saves at most (its connect and disconnect take
  about a second).
* fit(): the same training runs (every configuration x seed, same seeds, same threads) one after
  another in this process, the data loaded once, as the sweep's driver does.
* plain Ray Tune: ``ray.init`` + a ``tune.Tuner`` over a function trainable written the way Ray's
  examples write one (the data through ``tune.with_parameters``, ``tune.report`` each epoch with the
  seeds' mean, no checkpoints, Ray's defaults otherwise: an actor per trial), the same 13 trials of
  3 seeds with the same training code (``fit()``), 1 CPU each, 2 at once + ``ray.shutdown``; and the
  same with ``reuse_actors=True``, the one setting a Ray Tune user would change for short trials.
* Optuna: one study in this process over the same 13 configurations (a ``GridSampler`` over their
  ids), ``n_jobs=2`` (two threads), each trial training its 3 seeds side by side with ``fit()``.
* The quickstart as it ships: the default sweep, the ``fit()`` loop, plain Ray Tune with
  ``reuse_actors=True`` and Optuna again at the space's own epochs (``make demo``'s trials, longer
  than the 3-epoch ones above, so a start-up paid once per actor weighs less).

The ratio is a side's wall over fit()'s wall. Ray's wall is then split into Ray start/stop, training
(the trials' own ``epoch_seconds``), in-trial overhead (building the run, metrics, checkpoints,
``tune.report``) and the rest of the two trial slots' time (actor start-up, the driver's set-up,
scheduling, result handling and experiment snapshots, and the tail when one trial is left). Two
parts of that rest are timed on their own from Ray's state API: the driver's set-up until Tune asks
Ray for the first trial actor, and each actor's start-up (its creation task from submission to end:
a worker process started, the trainable's imports, its ``setup``). A trial's set-up before its first
epoch is shown apart for the first trial of each actor process, which pays what a new process pays
once, and for the trials after it.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass

from common import Row, Target, add_repo_to_path, interleaved, median, section_main

add_repo_to_path()

from taso_tune.training.data.sets import ImageData, load_dataset  # noqa: E402
from taso_tune.training.run import TrainConfig, fit  # noqa: E402
from taso_tune.tuning.trainable import LABEL_KEYS, train_config_of  # noqa: E402

SECTION = "2 sweep overhead"
#: The default sweep's wall over the fit() loop's: no slower than training the trials one by one
DEFAULT_TARGET = Target("<=", 1.0)
#: The best documented setting's, with 2 trials at once: parallel efficiency >= 0.75
BEST_TARGET = Target("<=", 0.65)
#: The default sweep's wall over the fastest of plain Ray Tune's and Optuna's
ALTERNATIVE_TARGET = Target("<=", 1.1)


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
    until_first_actor: (
        float | None
    )  # the driver's set-up: run_sweep's start to the first actor asked
    actor_starts: tuple[float, ...]  # each trial actor's start-up (process, imports, setup)
    setups: tuple[
        tuple[float, ...], tuple[float, ...]
    ]  # before the first epoch: first trials, later

    @property
    def wall(self) -> float:
        return self.start + self.sweep + self.stop

    @property
    def idle_slots(self) -> float:
        """Slot-seconds of the sweep not spent inside a trial's function."""
        return self.slots * self.sweep - self.training - self.in_trial


def ray_sweep(
    epochs: int, seeds: int, packing: str = "separate", reuse: bool | str = "auto"
) -> RaySweep:
    from sweeps import actor_start_ups, quickstart, run_quiet, start_ray, stop_ray, storage

    spec = quickstart(
        scheduler="none", epochs=epochs, seeds=seeds, seed_packing=packing, reuse_actors=reuse
    )
    stop_ray()
    with storage() as root:
        started = start_ray()
        since = time.time()
        run = run_quiet(spec, root, "quickstart-none")
        until_first_actor, actor_starts = actor_start_ups(since)
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
        until_first_actor,
        actor_starts,
        trial_setups(run.trials),
    )


def trial_setups(trials: list[list[dict]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each trial's seconds before its first epoch (building its seeds' runs: its first report's
    ``time_total_s`` less its ``epoch_seconds``), for the first trial of each actor process and
    for the trials that process ran after it."""
    by_process: dict[int, list[tuple[int, str, float]]] = {}
    for records in trials:
        first = records[0]
        setup = first["time_total_s"] - first["epoch_seconds"]
        # in start order: Ray's timestamp is whole seconds, and of short trials an actor runs
        # one after another in the same second, the earlier has the lower trial id
        started = (first["timestamp"], first["trial_id"])
        by_process.setdefault(first["pid"], []).append((*started, setup))
    ordered = [sorted(runs) for runs in by_process.values()]
    return (
        tuple(runs[0][-1] for runs in ordered),
        tuple(run[-1] for runs in ordered for run in runs[1:]),
    )


def configuration_runs(epochs: int, seeds: int) -> dict[str, list[TrainConfig]]:
    """Each quickstart configuration's training runs, one per seed, on the CPU with the trial's
    CPUs as torch threads (as a trial of the sweep would)."""
    from sweeps import quickstart

    spec = quickstart(scheduler="none", epochs=epochs, seeds=seeds)
    runs: dict[str, list[TrainConfig]] = {}
    for trial in spec.trials():
        flat = {k: v for k, v in trial.items() if k not in LABEL_KEYS}
        config = train_config_of(flat, cpus=spec.resources.cpus, device="cpu")
        runs.setdefault(trial["config_id"], []).append(config)
    return runs


def fit_loop(epochs: int, seeds: int) -> float:
    """Wall seconds of every training run of the same trials by fit(), one after another."""
    runs = configuration_runs(epochs, seeds)
    start = time.perf_counter()
    data = load_dataset("digits")
    for configs in runs.values():
        for config in configs:
            for _ in fit(config, data):
                pass
    return time.perf_counter() - start


def seeds_side_by_side(configs: list[TrainConfig], data: ImageData) -> Iterator[float]:
    """Train ``configs`` (a configuration's seeds) epoch by epoch together; yield their mean
    validation accuracy after each epoch."""
    for records in zip(*(fit(config, data) for config in configs), strict=True):
        yield sum(r["val_acc"] for r in records) / len(records)


def plain_tune_sweep(epochs: int, seeds: int, reuse: bool = False) -> float:
    """Wall seconds of ``ray.init`` + a plain Ray Tune sweep of the same trials + ``ray.shutdown``;
    ``reuse``: Tune's ``reuse_actors`` (its default is false)."""
    from ray import tune
    from sweeps import start_ray, stop_ray, storage

    runs = configuration_runs(epochs, seeds)

    def train_configuration(config: dict, data: ImageData) -> None:
        for val_acc in seeds_side_by_side(runs[config["config_id"]], data):
            tune.report({"val_acc": val_acc})

    stop_ray()
    with storage() as root, contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        start_ray()
        trainable = tune.with_parameters(train_configuration, data=load_dataset("digits"))
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"config_id": tune.grid_search(list(runs))},
            tune_config=tune.TuneConfig(
                metric="val_acc", mode="max", max_concurrent_trials=2, reuse_actors=reuse
            ),
            run_config=tune.RunConfig(storage_path=str(root), name="plain", verbose=0),
        )
        results = tuner.fit()
        stop_ray()
        wall = time.perf_counter() - start
    if results.errors or len(results) != len(runs):
        raise RuntimeError(f"the plain Ray Tune sweep failed: {results.errors}")
    return wall


def optuna_study(epochs: int, seeds: int) -> float:
    """Wall seconds of an Optuna study over the same configurations, 2 trials at once (threads)."""
    import optuna

    start = time.perf_counter()
    data = load_dataset("digits")
    runs = configuration_runs(epochs, seeds)
    ids = list(runs)

    def objective(trial: optuna.Trial) -> float:
        config_id = trial.suggest_categorical("config_id", ids)
        value = float("nan")
        for epoch, value in enumerate(seeds_side_by_side(runs[config_id], data), 1):
            trial.report(value, epoch)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.GridSampler({"config_id": ids})
    )
    study.optimize(objective, n_trials=len(ids), n_jobs=2)
    if len(study.trials) != len(ids):
        raise RuntimeError(f"the Optuna study ran {len(study.trials)} trials, not {len(ids)}")
    return time.perf_counter() - start


def setup_rows(sweep: RaySweep, label: str) -> list[Row]:
    """A trial's set-up before its first epoch: the first one in each actor process against the
    ones after it in the same process (the first pays what a new process pays once: torch builds
    its first optimizer by importing ``torch._dynamo``)."""
    first, later = sweep.setups
    if not later:
        value, note = f"{median(first):.2f} s", f"median of {len(first)}, one per actor"
    else:
        value = f"{median(first):.2f} s vs {median(later):.2f} s"
        note = f"medians: {len(first)} first trials of an actor, {len(later)} later ones"
    return [
        Row(
            SECTION,
            f"{label}: a trial's set-up before its first epoch, first in its actor vs later",
            value,
            note=note,
        )
    ]


def start_up_rows(sweep: RaySweep, label: str) -> list[Row]:
    """The driver's set-up and the actors' start-up, from Ray's state API (none without it)."""
    if sweep.until_first_actor is None:
        return []
    starts = sweep.actor_starts
    return [
        Row(
            SECTION,
            f"{label}: driver set-up until Tune asks for the first actor",
            f"{sweep.until_first_actor:.1f} s",
            note="data loaded, checks (free space: a run built per model and optimizer), the Tuner",
        ),
        Row(
            SECTION,
            f"{label}: a trial actor's start-up (worker process, imports, setup)",
            f"{median(starts):.1f} s",
            note=f"median of {len(starts)} actors, from Tune asking Ray for one until its "
            "constructor returned (Ray's state API)",
        ),
    ]


class _Bare:
    """An actor with nothing to import: its start-up is Ray's alone."""

    def ready(self) -> bool:
        return True


def actor_start(tune_env: bool, actors: int = 2) -> float:
    """Seconds to start ``actors`` bare 1-CPU actors at once on a Ray started 1.5 s before (about
    when a sweep's driver asks for its first trial actors), with the runtime env Ray Tune gives
    every trial actor (``tune_env``: its ``env_vars``) or with none. Ray starts a worker process per
    CPU with Ray itself and hands those to actors without a runtime env; an actor with one gets a
    new worker process."""
    import ray
    from ray.tune.execution.class_cache import DEFAULT_ENV_VARS
    from sweeps import start_ray, stop_ray

    stop_ray()
    start_ray()
    time.sleep(1.5)
    options = {"runtime_env": {"env_vars": dict(DEFAULT_ENV_VARS)}} if tune_env else {}
    bare = ray.remote(num_cpus=1, **options)(_Bare)
    start = time.perf_counter()
    ray.get([bare.remote().ready.remote() for _ in range(actors)])
    seconds = time.perf_counter() - start
    stop_ray()
    return seconds


def shipped_epochs() -> int:
    """The epochs the quickstart space plans (what ``make demo`` trains)."""
    from sweeps import quickstart

    return quickstart().epochs


def run(quick: bool = False) -> list[Row]:
    epochs, seeds, repeats = (1, 1, 1) if quick else (3, 3, 3)
    full = 2 if quick else shipped_epochs()
    as_shipped = f"{full} epochs, --quick" if quick else f"{full} epochs"
    results = interleaved(
        {
            "default_full": lambda: ray_sweep(full, seeds),
            "fit_full": lambda: fit_loop(full, seeds),
            "plain_tune_reused_full": lambda: plain_tune_sweep(full, seeds, reuse=True),
            "optuna_full": lambda: optuna_study(full, seeds),
            "default": lambda: ray_sweep(epochs, seeds),
            "fit": lambda: fit_loop(epochs, seeds),
            "per_trial": lambda: ray_sweep(epochs, seeds, reuse=False),
            "plain_tune": lambda: plain_tune_sweep(epochs, seeds),
            "plain_tune_reused": lambda: plain_tune_sweep(epochs, seeds, reuse=True),
            "optuna": lambda: optuna_study(epochs, seeds),
            "stacked": lambda: ray_sweep(epochs, seeds, "stacked", reuse=True),
            "actor_tune_env": lambda: actor_start(tune_env=True),
            "actor_no_env": lambda: actor_start(tune_env=False),
        },
        repeats,
    )
    fits, fits_full = results["fit"], results["fit_full"]
    first = results["default"][0]

    def setting(length: str) -> str:
        return f"quickstart, scheduler none, {length}, {first.trials} trials, 1 CPU/1 thread each, n={repeats}"

    what = setting(f"{epochs} epochs")
    what_full = setting(
        as_shipped if quick else f"{full} epochs, the space's own as make demo runs it"
    )

    def share(seconds: float, of: float) -> str:
        return f"{seconds:.1f} s ({seconds / of:.0%})"

    def wall(result: RaySweep | float) -> float:
        """A Ray sweep's wall, or the seconds a plain side returned."""
        return result if isinstance(result, float) else result.wall

    def ratio(side: str, seconds=wall, baseline: list[float] = fits) -> float:
        return median([seconds(r) / b for r, b in zip(results[side], baseline, strict=True)])

    def wall_row(
        side: str,
        measure: str,
        target: Target | None,
        seconds=wall,
        note: str = what,
        baseline: list[float] = fits,
    ) -> Row:
        return Row(
            SECTION,
            measure,
            f"{median([seconds(r) for r in results[side]]):.1f} s",
            f"{median(baseline):.1f} s",
            ratio(side, seconds, baseline),
            target,
            note,
        )

    # per round, the fastest of the things a user would write instead
    alternatives = ("plain_tune", "plain_tune_reused", "optuna")
    fastest = [min(times) for times in zip(*(results[a] for a in alternatives), strict=True)]
    alternatives_full = ("plain_tune_reused_full", "optuna_full")
    fastest_full = [
        min(times) for times in zip(*(results[a] for a in alternatives_full), strict=True)
    ]

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
                f"{label}: in-trial overhead (run build, metrics, checkpoints)",
                share(typical.in_trial, slot_seconds),
                note=f"{typical.in_trial / trials * 1e3:.0f} ms per trial",
            ),
            *setup_rows(typical, label),
            Row(
                SECTION,
                f"{label}: slots idle (actor start-up, driver set-up, scheduling, snapshots, tail)",
                share(typical.idle_slots, slot_seconds),
                note=f"{typical.idle_slots / trials * 1e3:.0f} ms per trial",
            ),
            *start_up_rows(typical, label),
            Row(
                SECTION,
                f"{label}: Ray's own CPU during the sweep (driver, raylet, GCS, dashboard)",
                f"{typical.ray_cpu:.1f} s ({typical.ray_cpu / typical.sweep:.0%} of a core)",
                note="competes with the 2 trials for the 2 cores",
            ),
        ]

    return [
        wall_row(
            "default",
            f"Ray sweep wall ({first.slots} trials at once), default (reuse_actors: auto: "
            "reused here) vs fit() loop",
            DEFAULT_TARGET,
        ),
        wall_row(
            "default",
            "the same without ray.init + shutdown (the most joining a running Ray saves) vs fit()",
            BEST_TARGET,
            seconds=lambda r: r.sweep,
        ),
        wall_row(
            "per_trial", "Ray sweep wall, one actor per trial (reuse_actors: false) vs fit()", None
        ),
        wall_row(
            "stacked",
            "Ray sweep wall, actors reused and seeds stacked (seed_packing: stacked) vs fit() loop",
            None,
            note=f"training in trials {median([r.training for r in results['stacked']]):.1f} s "
            f"(separate: {median([r.training for r in results['default']]):.1f} s); {what}",
        ),
        wall_row(
            "plain_tune",
            "plain Ray Tune: function trainable, Ray's defaults (an actor per trial) vs fit()",
            None,
            note=f"ray.init + Tuner.fit + ray.shutdown, no checkpoints; {what}",
        ),
        wall_row(
            "plain_tune_reused",
            "plain Ray Tune, the same with reuse_actors=True vs fit()",
            None,
            note=f"ray.init + Tuner.fit + ray.shutdown, no checkpoints; {what}",
        ),
        wall_row(
            "optuna",
            "Optuna: one study, GridSampler, n_jobs=2 (two threads) vs fit()",
            None,
            note=f"one process, no Ray; {what}",
        ),
        Row(
            SECTION,
            "taso-tune default vs the fastest of plain Ray Tune (either) and Optuna",
            f"{median([r.wall for r in results['default']]):.1f} s",
            f"{median(fastest):.1f} s",
            ratio("default", baseline=fastest),
            ALTERNATIVE_TARGET,
            "taso-tune does more per trial: seeds' statistics, checkpoints, names, live gauges; "
            "ratio per round, against that round's fastest",
        ),
        Row(
            SECTION,
            "Ray slot-seconds (slots x wall), default, vs fit() loop",
            f"{median([r.slots * r.wall for r in results['default']]):.1f} s",
            f"{median(fits):.1f} s",
            ratio("default", lambda r: r.slots * r.wall),
            note="the CPU time the sweep holds; 1.0 would be overhead-free",
        ),
        wall_row(
            "default_full",
            f"the quickstart as it ships ({as_shipped}): default sweep wall vs fit() loop",
            DEFAULT_TARGET,
            note=what_full,
            baseline=fits_full,
        ),
        wall_row(
            "default_full",
            f"the quickstart as it ships ({as_shipped}): without ray.init + shutdown vs fit()",
            BEST_TARGET,
            seconds=lambda r: r.sweep,
            note=what_full,
            baseline=fits_full,
        ),
        wall_row(
            "plain_tune_reused_full",
            f"the quickstart as it ships ({as_shipped}): plain Ray Tune, reuse_actors=True vs fit()",
            None,
            note=f"ray.init + Tuner.fit + ray.shutdown, no checkpoints; {what_full}",
            baseline=fits_full,
        ),
        wall_row(
            "optuna_full",
            f"the quickstart as it ships ({as_shipped}): Optuna, n_jobs=2 vs fit()",
            None,
            note=f"one process, no Ray; {what_full}",
            baseline=fits_full,
        ),
        Row(
            SECTION,
            f"the quickstart as it ships ({as_shipped}): taso-tune default vs the faster of plain "
            "Ray Tune (reuse_actors=True) and Optuna",
            f"{median([r.wall for r in results['default_full']]):.1f} s",
            f"{median(fastest_full):.1f} s",
            ratio("default_full", baseline=fastest_full),
            ALTERNATIVE_TARGET,
            "plain Ray Tune's Ray defaults (an actor per trial) left out at this length: slower than "
            "reuse_actors=True at 3 epochs, and the same actor start-ups per trial; ratio per round",
        ),
        *breakdown("default", "default (actors reused)"),
        *breakdown("per_trial", "one actor per trial"),
        Row(
            SECTION,
            "2 bare actors' start-up: with Ray Tune's runtime env for trial actors vs with none",
            f"{median(results['actor_tune_env']):.2f} s",
            f"{median(results['actor_no_env']):.2f} s",
            ratio("actor_tune_env", baseline=results["actor_no_env"]),
            note="an actor class with nothing to import, 1 CPU each, asked for 1.5 s after "
            "ray.init; with no runtime env Ray hands them the worker processes it started with "
            "itself; Tune gives every trial actor env_vars, so each gets a new process",
        ),
    ]


if __name__ == "__main__":
    section_main(run, __doc__.splitlines()[0])
