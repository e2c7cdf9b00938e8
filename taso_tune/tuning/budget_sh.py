"""Budget-aware successive halving: each rung trains complete runs, decay included, at its budget.

ASHA judges a trial at an early rung by its metric *so far*; a schedule that knows the planned run
length (TASO, cosine, linear, WSD) keeps its learning rate high until late and so looks worse at every
early rung than it will end. Budget-aware successive halving instead gives every surviving
configuration a complete, shorter run at each rung: rung budgets r, r*eta, r*eta^2, ... up to the
planned epochs, each trained with ``total_epochs`` equal to that budget, so every schedule finishes its
decay before it is judged. Configurations are ranked by their metric's mean over seeds and the top
1/eta go on to the next rung.

Each rung is an ordinary Ray Tune run (all its trials in parallel, on the cluster like any sweep,
checkpointed and resumable), stored as ``EXPERIMENT/rung-<i>-<epochs>ep`` (:func:`~taso_tune.experiment.layout.rung_name`). The rung bookkeeping is
written atomically to ``EXPERIMENT/taso_tune_budget_sh.json`` after each rung, so a resumed sweep skips
finished rungs and restores the unfinished one.
"""

from __future__ import annotations

import json
import math
import posixpath
import time
from collections import defaultdict
from typing import Any

from ray import tune

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import BUDGET_SH_FILE
from taso_tune.core.storage import read_experiment_file, write_experiment_file
from taso_tune.experiment.layout import rung_name
from taso_tune.experiment.state import trials_per_configuration
from taso_tune.spaces import SweepSpec, with_overrides
from taso_tune.stats.seeds import diverged_score, summarize
from taso_tune.tuning.observe.tensorboard import (
    ensure_experiment_summary,
    write_experiment_summary,
)
from taso_tune.tuning.outcome import SweepOutcome
from taso_tune.tuning.paths import new_experiment_path
from taso_tune.tuning.preflight import Writes
from taso_tune.tuning.prepare import prepare
from taso_tune.tuning.resources import save_resources
from taso_tune.tuning.space_file import write_space_file
from taso_tune.tuning.trials import GridTrials
from taso_tune.tuning.tuner import build_tuner


def _write_state(experiment: str, state: dict[str, Any]) -> None:
    write_experiment_file(experiment, BUDGET_SH_FILE, json.dumps(state, indent=2, sort_keys=True))


def _read_state(experiment: str) -> dict[str, Any] | None:
    text = read_experiment_file(experiment, BUDGET_SH_FILE)
    return None if text is None else json.loads(text)


def survivors(scores: dict[str, float], eta: float, mode: str) -> list[str]:
    """The top ``ceil(n / eta)`` configuration ids by mean score (ties broken by id)."""
    keep = max(1, math.ceil(len(scores) / eta))
    sign = -1.0 if mode == "max" else 1.0
    ranked = sorted(scores, key=lambda cid: (sign * scores[cid], cid))
    return ranked[:keep]


def _rung_scores(results: tune.ResultGrid, metric: str, mode: str) -> dict[str, float]:
    """Each configuration's score: the mean of ``metric`` over its seeds by the one statistics rule
    (:func:`taso_tune.stats.seeds.summarize`: a diverged seed at chance level). A configuration with a
    seed that failed for good is not comparable and scores worst (``-inf`` for ``max``), so it never
    goes on."""
    planned: dict[str, int] = defaultdict(int)
    values: dict[str, list[float]] = defaultdict(list)
    diverged: dict[str, int] = defaultdict(int)
    classes: dict[str, int] = {}
    for result in results:
        metrics = result.metrics or {}
        trial = result.config["trial"]
        config_id = trial["config_id"]
        planned[config_id] += len(trial["seeds"])
        classes[config_id] = int(metrics.get("num_classes") or 0)
        if result.error is not None:
            continue
        for record in (metrics.get("per_seed") or {}).values():
            if record.get("status") == "diverged":
                diverged[config_id] += 1
            elif record.get("status") == "complete" and math.isfinite(
                float(record.get(metric, math.nan))
            ):
                values[config_id].append(float(record[metric]))
    complete = [v for vs in values.values() for v in vs]  # the rung's complete seeds
    worst = -math.inf if mode == "max" else math.inf
    scores = {}
    for config_id, count in planned.items():
        chance = (
            diverged_score(metric, num_classes=classes[config_id] or None, complete=complete)
            if diverged[config_id]
            else None
        )
        summary = summarize(values[config_id], count, diverged=diverged[config_id], chance=chance)
        scores[config_id] = summary.mean if summary.comparable else worst
    return scores


def rung_writes(spec: SweepSpec, state: dict[str, Any] | None = None) -> Writes:
    """What the rungs still ahead write (:class:`~taso_tune.tuning.preflight.Writes`): each rung's
    trials and epochs, every configuration at the first rung and the top ``1/eta`` of the previous
    at each next; from ``state``, the rungs not done yet (the current one counted whole)."""
    eta = spec.scheduler.reduction_factor
    per_config = trials_per_configuration(spec)
    if state is None:
        budgets, configs = spec.scheduler.rung_epochs(spec.epochs), len(spec.configurations())
    else:
        rungs = state["rungs"]
        done = [rung for rung in rungs if rung["done"]]
        budgets = state["budgets"][len(done) :]
        if len(rungs) > len(done):
            configs = len(rungs[len(done)]["configs"])
        elif done:
            configs = max(1, math.ceil(len(done[-1]["configs"]) / eta))
        else:
            configs = len(state["configs"])
    runs = []
    for epochs in budgets:
        runs.append((configs * per_config, epochs))
        configs = max(1, math.ceil(configs / eta))
    return Writes(tuple(runs), "sweep" if state is None else "resume")


def _rung_source(spec: SweepSpec, epochs: int, config_ids: list[str]) -> GridTrials:
    """The trials of one rung: the survivors, no early stopping, ``epochs`` planned."""
    return GridTrials(with_overrides(spec, epochs=epochs, scheduler="none"), config_ids)


def _run_rung(
    spec: SweepSpec,
    experiment: str,
    index: int,
    epochs: int,
    config_ids: list[str],
    datasets,
    restore: bool,
) -> tuple[dict[str, float], int]:
    source = _rung_source(spec, epochs, config_ids)
    name = rung_name(index, epochs)
    label = posixpath.basename(experiment.rstrip("/"))
    run = build_tuner(source, datasets, experiment, name, restore=restore, label=label)
    print(
        f"budget-sh rung {index}: {len(config_ids)} configurations x {spec.seeds} seeds, {epochs} epochs each",
        flush=True,
    )
    results = run.fit()
    return _rung_scores(results, spec.metric, spec.mode), results.num_errors


def _run_rungs(spec: SweepSpec, experiment: str, state: dict[str, Any], datasets, start: float):
    budgets, rungs = state["budgets"], state["rungs"]
    eta = spec.scheduler.reduction_factor
    errored = 0
    while not (rungs and rungs[-1]["done"] and len(rungs) == len(budgets)):
        restore = bool(rungs) and not rungs[-1]["done"]
        if not restore:
            index = len(rungs)
            ids = state["configs"] if index == 0 else survivors(rungs[-1]["scores"], eta, spec.mode)
            rungs.append({"epochs": budgets[index], "configs": ids, "done": False})
            _write_state(experiment, state)
        current, index = rungs[-1], len(rungs) - 1
        scores, errors = _run_rung(
            spec, experiment, index, current["epochs"], current["configs"], datasets, restore
        )
        errored += errors  # trials that failed for good (diverged ones are not errors)
        current.update(scores=scores, done=True)
        _write_state(experiment, state)
    final = state["rungs"][-1]
    winner = survivors(final["scores"], math.inf, spec.mode)[0]
    state["winner"] = winner
    _write_state(experiment, state)
    trials = sum(len(r["configs"]) for r in state["rungs"]) * trials_per_configuration(spec)
    print(f"budget-sh: winner {winner} after {len(state['rungs'])} rungs", flush=True)
    return SweepOutcome(experiment, trials, errored, time.perf_counter() - start)


def run_budget_sh(
    spec: SweepSpec, storage: str, *, name: str | None = None, address: str | None = None
):
    """Run budget-aware successive halving for ``spec`` under ``STORAGE/NAME`` (a grid or random
    space: a valid budget-sh spec never searches with Optuna)."""
    name = name or spec.name
    experiment = new_experiment_path(storage, name)
    start = time.perf_counter()
    datasets = prepare(GridTrials(spec), storage, address, writes=rung_writes(spec))
    write_space_file(experiment, spec)
    write_experiment_summary(experiment, spec)
    save_resources(experiment, GridTrials(spec))
    state = {
        "budgets": spec.scheduler.rung_epochs(spec.epochs),
        "configs": [c["config_id"] for c in spec.configurations()],
        "rungs": [],
    }
    _write_state(experiment, state)
    return _run_rungs(spec, experiment, state, datasets, start)


def resume_budget_sh(experiment: str, spec: SweepSpec, storage: str, *, address: str | None = None):
    """Continue the interrupted budget-sh sweep at ``experiment`` (resolved, under ``storage``):
    finished rungs are kept, the current rung restored."""
    state = _read_state(experiment)
    if state is None:
        raise ConfigError("experiment", experiment, f"has no {BUDGET_SH_FILE} to resume from")
    start = time.perf_counter()
    writes = rung_writes(spec, state)
    datasets = prepare(GridTrials(spec), storage, address, writes=writes, experiment=experiment)
    ensure_experiment_summary(experiment, spec)
    return _run_rungs(spec, experiment, state, datasets, start)
