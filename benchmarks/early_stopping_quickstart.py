"""Early stopping: epochs the quickstart sweep consumes under ASHA, cooldown-asha, top-k and
budget-sh against none, and whether the best configuration per optimizer stays the same.

The quickstart space (13 configurations x 3 seeds, at the space's own epochs) runs five times on the same Ray:
``scheduler: none`` (every trial to the end: the ground truth, and the space's own setting), ASHA,
cooldown-asha and top-k (grace 3, eta 3; top-k without the space's ``max_concurrent``, which it
refuses: two trials at once all the same, one per core) and ``budget-sh`` (eta 3), the settings of
:data:`SCHEDULERS`.
Epochs are counted from what the trials reported, cooldown branches' epochs included; the best
configuration per optimizer
is :meth:`taso_tune.results.Experiment.best`, over the seeds that ran the full planned length (for
budget-sh: its last rung). ASHA is asynchronous, so its epoch count moves a little from run to run;
the winners of ``none`` are deterministic (seeded, CPU).

``docs/early-stopping.md`` has the larger study (regret, rank correlation per rung).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from common import Row, Target, add_repo_to_path, section_main

add_repo_to_path()

from taso_tune.results.experiment import load_experiment  # noqa: E402
from taso_tune.spaces import load_space_dict  # noqa: E402
from taso_tune.stats.seeds import format_mean_std  # noqa: E402

SECTION = "4 early stopping"
#: The early-stopping settings this section measures against ``none``.
SCHEDULERS = {
    "asha": {"type": "asha", "grace_period": 3, "reduction_factor": 3},
    "cooldown-asha": {"type": "cooldown-asha", "grace_period": 3, "reduction_factor": 3},
    "top-k": {"type": "top-k", "grace_period": 3, "reduction_factor": 3},
    "budget-sh": {"type": "budget-sh", "reduction_factor": 3},
}


@dataclass(frozen=True)
class Outcome:
    epochs: int
    wall_seconds: float
    winners: dict[str, str]  # optimizer -> config_id of its best configuration
    best: str  # config_id of the best configuration overall
    trial_lengths: dict[int, int]  # epochs a trial ran -> how many trials ran that long
    scores: dict[
        str, tuple[float, float]
    ]  # config_id -> (mean, std) of val_acc over its full-length seeds
    seeds: int  # planned seeds per configuration


def sweep_outcome(scheduler: str, epochs: int | None, seeds: int | None) -> Outcome:
    from sweeps import quickstart, run_quiet, storage

    spec = quickstart(epochs=epochs, seeds=seeds, name=f"quickstart-{scheduler}")
    if scheduler != "none":
        data = {**spec.to_dict(), "scheduler": SCHEDULERS[scheduler]}
        if scheduler == "top-k":
            data.pop("max_concurrent", None)
        spec = load_space_dict(data, spec.source)
    with storage() as root:
        run = run_quiet(spec, root, spec.name)
        experiment = load_experiment(str(run.experiment))
    best = experiment.best()  # best first
    lengths = Counter(
        len(records) for records in run.trials
    )  # epochs each trial (configuration) ran
    scores = {
        row.config_id: (row.val_acc_mean, row.val_acc_std)
        for row in experiment.aggregated.itertuples()
    }
    branches = experiment.cooldowns
    branch_epochs = int(branches["cooldown_epochs"].sum()) if len(branches) else 0
    return Outcome(
        run.epochs_run + branch_epochs,
        run.wall_seconds,
        dict(zip(best["optimizer"], best["config_id"], strict=True)),
        str(best["config_id"].iloc[0]),
        dict(sorted(lengths.items())),
        scores,
        experiment.planned_seeds,
    )


def compare_rows(name: str, outcome: Outcome, truth: Outcome) -> list[Row]:
    same = [opt for opt, cid in truth.winners.items() if outcome.winners.get(opt) == cid]
    differ = [
        f"{opt}: {outcome.winners.get(opt, 'none ran to the end')} instead of {truth.winners[opt]}"
        for opt in truth.winners
        if opt not in same
    ]
    lengths = ", ".join(f"{n} x {epochs} ep" for epochs, n in outcome.trial_lengths.items())

    def truth_score(config_id: str) -> str:
        mean, std = truth.scores[config_id]
        n = truth.seeds
        return format_mean_std(mean, None if std != std else std, n, scale=1.0, digits=4)

    return [
        Row(
            SECTION,
            f"epochs trained: {name} vs none",
            f"{outcome.epochs}",
            f"{truth.epochs}",
            outcome.epochs / truth.epochs,
            Target("<=", 0.4),
            f"trials: {lengths}; wall {outcome.wall_seconds:.0f} s vs {truth.wall_seconds:.0f} s",
        ),
        Row(
            SECTION,
            f"best configuration overall: {name} = none",
            outcome.best,
            truth.best,
            float(outcome.best == truth.best),
            Target(">=", 1.0),
            f"final val_acc (none, mean ± std over seeds): {truth_score(outcome.best)} for the pick, "
            f"{truth_score(truth.best)} for the best",
        ),
        Row(
            SECTION,
            f"best configuration per optimizer: {name} = none",
            f"{len(same)}/{len(truth.winners)} same",
            ", ".join(sorted(truth.winners.values())),
            len(same) / len(truth.winners),
            Target(">=", 1.0),
            "; ".join(differ) or "all the same",
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    from sweeps import start_ray, stop_ray

    epochs, seeds = (4, 1) if quick else (None, None)  # None: the space's own epochs and seeds
    start_ray()
    truth = sweep_outcome("none", epochs, seeds)
    rows = []
    for scheduler in SCHEDULERS:
        rows += compare_rows(scheduler, sweep_outcome(scheduler, epochs, seeds), truth)
    stop_ray()
    return rows


if __name__ == "__main__":
    section_main(run, __doc__.splitlines()[0])
