"""Export the best hyperparameters of a sweep as a defaults file, and turn a defaults file back into
a sweep on a new model/dataset pair (the paper's suboptimal scenario, Tables VIII-X).

A defaults file is YAML::

    format: taso-tune-defaults/1
    provenance: {experiment: ..., exported: ..., taso_tune_version: ..., model: ..., dataset: ...,
                 epochs: ..., selected_on: val_acc, scheduler: asha, seeds: [0, 1, 2],
                 planned_seeds: 3, configurations: {total: 13, compared: 5, not_compared: 8},
                 seeds_stopped_early: 24, seeds_diverged: 1, split_sizes: {train: ..., val: ..., test: ...},
                 statistics: "...", comparison: {reference: taso_lr=0.05, selected_on: val_acc,
                 compared_on: test_acc, level: 0.05, interval: "Holm-adjusted interval ...",
                 equivalence_margin: 0.005}}
    optimizers:
      taso:
        config_id: taso_lr=0.05
        hparams: {alpha: 25.0, beta: 0.7, lr: 0.05, ...}
        verdict: reference       # or better / worse / no difference shown / not compared
        val_acc: {mean: 0.97, std: 0.004, ci95: [0.965, 0.975], n: 3, planned: 3, complete: 3,
                  diverged: 0, no_value: 0, at_chance: 0}
        test_acc: {...}
        versus_best: {metric: test_acc, reference: true}   # for the others: the one rule's numbers
        grid_edges: []

``std`` and ``ci95`` are null with fewer than two seeds; ``ci95`` lies inside [0, 1]. ``diverged``
counts the seeds whose status says so (the summary's and the report's "diverged k/n"),
``no_value`` those that finished without a finite value (scored at chance like them: "no finite
value k/n"), ``at_chance`` both and the seeds under the at-chance bar (null when the number of
classes is unknown). Only
configurations whose planned seeds all finished are exported. ``verdict`` and ``versus_best`` are
the one verdict rule's (:func:`~taso_tune.results.significance.paired_comparisons`), the same the
summary and the report print.

Optimizers and fields are sorted, so two exports of the same results diff cleanly.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import yaml

from taso_tune import __version__
from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import write_yaml_atomic
from taso_tune.results.aggregate import SelectOn, hyperparameter_columns, present, selection_metric
from taso_tune.results.experiment import Experiment
from taso_tune.results.grid_edges import edge_warnings
from taso_tune.results.significance import paired_comparisons
from taso_tune.spaces import SpaceLoader, SweepSpec, load_space_dict, with_overrides
from taso_tune.stats.verdict import DEFAULT_LEVEL, DEFAULT_MARGIN, INTERVAL_LABEL
from taso_tune.training.optimizers import OPTIMIZERS, resolve_hparams

FORMAT = "taso-tune-defaults/1"


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    return value


def _number(value: Any) -> float | None:
    value = _plain(value)
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )


def _stat(row: Mapping[str, Any], metric: str) -> dict[str, Any]:
    low, high = _number(row[f"{metric}_ci_low"]), _number(row[f"{metric}_ci_high"])
    summary = row[f"{metric}_summary"]
    return {
        "mean": _number(row[f"{metric}_mean"]),
        "std": _number(row[f"{metric}_std"]),
        "ci95": None if low is None or high is None else [low, high],
        "n": int(row["n"]),
        "planned": int(row["planned"]),
        "complete": int(row["complete"]),
        "diverged": int(summary.diverged),
        "no_value": int(summary.no_value),
        "at_chance": None if summary.at_chance is None else int(summary.at_chance),
    }


def _versus_best(row: Mapping[str, Any], reference: str) -> dict[str, Any]:
    """The one rule's comparison with the reference (:mod:`~taso_tune.results.significance`): the
    difference of means on the compared metric with its Holm-adjusted interval and that interval's
    confidence, the paired and Holm p-values, the verdict, and TOST at its margin (its p-value and,
    Holm-adjusted over the same family, ``p_holm``, which decides ``equivalent``)."""
    if row["verdict"] == "reference":
        return {"metric": row["compared_on"], "reference": True}
    low, high = _number(row["ci_low"]), _number(row["ci_high"])
    equivalence = row["equivalence"]
    out = {
        "metric": row["compared_on"],
        "against": reference,
        "n": int(row["n"]),
        "difference": _number(row["difference"]),
        "holm_interval": None if low is None or high is None else [low, high],
        "interval_confidence": _number(row["confidence"]),
        "p_value": _number(row["p_value"]),
        "p_holm": _number(row["p_holm"]),
        "verdict": row["verdict"],
    }
    if row["reason"]:
        out["reason"] = row["reason"]
    if hasattr(equivalence, "equivalent"):
        out["equivalence"] = {
            "margin": equivalence.margin,
            "p_value": equivalence.p_value,
            "p_holm": _number(equivalence.p_holm),
            "equivalent": equivalence.equivalent,
        }
    return out


def _provenance(experiment: Experiment, select_on: SelectOn) -> dict[str, Any]:
    """How the answer was obtained: scheduler, seeds, what was compared, the data and its splits."""
    trials, agg, space = experiment.final_trials, experiment.aggregated, experiment.space
    first = trials.iloc[0]
    scheduler = space.get("scheduler", {})
    kind = scheduler.get("type", "") if isinstance(scheduler, dict) else str(scheduler)
    if isinstance(scheduler, dict) and scheduler.get("per_seed"):
        kind += " (per seed: biased baseline)"
    compared = int(agg["comparable"].astype(bool).sum())
    return {
        "experiment": experiment.path,
        "exported": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "taso_tune_version": __version__,
        "model": first["model"],
        "dataset": first["dataset"],
        "epochs": int(first["planned_epochs"]),
        "selected_on": selection_metric(select_on),
        "scheduler": kind,
        "seeds": sorted(int(s) for s in experiment.trials["seed"].unique()),
        "planned_seeds": experiment.planned_seeds,
        "configurations": {
            "total": len(agg),
            "compared": compared,
            "not_compared": len(agg) - compared,
        },
        "seeds_stopped_early": int((trials["status"] == "stopped-early").sum()),
        "seeds_diverged": int((trials["status"] == "diverged").sum()),
        "split_sizes": {
            split: _plain(first.get(f"{split}_size")) for split in ("train", "val", "test")
        },
        "statistics": STATISTICS_RULE,
    }


STATISTICS_RULE = (
    "mean, sample std and 95% t interval over the planned seeds, an accuracy's cut to [0, 1]; a "
    "diverged seed, or one without a finite value (no_value), at chance level; at_chance counts "
    "those and the seeds under a tenth of the way from chance to perfect accuracy (null when the "
    "number of classes is unknown); only configurations with every planned seed finished "
    "compared"
)


def _comparison(table) -> dict[str, Any]:
    """How the verdicts were reached: the reference, the two metrics, the level, the interval, the
    equivalence margin (the one rule of :mod:`taso_tune.stats.verdict`)."""
    reference = table.iloc[0]
    return {
        "reference": reference["config_id"],
        # other families' picks with the reference's mean: it heads them by no finding
        "reference_tied_with": list(reference["tied_picks"]),
        "selected_on": reference["selected_on"],
        "compared_on": reference["compared_on"],
        "paired": "by seed; Holm-corrected over the other families' picks",
        "level": DEFAULT_LEVEL,
        "interval": INTERVAL_LABEL,
        "equivalence_margin": DEFAULT_MARGIN,
    }


def defaults_from_experiment(experiment: Experiment, select_on: SelectOn = "val") -> dict[str, Any]:
    """The defaults document for ``experiment``: each optimizer's best comparable configuration."""
    best = experiment.best(select_on)
    if best.empty:
        raise ConfigError(
            "experiment",
            experiment.path,
            "has no configuration whose planned seeds all finished: nothing to export",
        )
    optimizers: dict[str, Any] = {}
    table = paired_comparisons(experiment, select_on)
    paired = {row["config_id"]: row for _, row in table.iterrows()}
    for _, row in best.iterrows():
        hps = {c[3:]: _plain(row[c]) for c in hyperparameter_columns(best) if present(row[c])}
        optimizers[row["optimizer"]] = {
            "config_id": row["config_id"],
            "hparams": dict(sorted(hps.items())),
            # its family's configurations with the same mean: the pick among them is no finding
            "tied_with": list(row["tied_in_family"]),
            "verdict": paired[row["config_id"]]["verdict"],
            "val_acc": _stat(row, "val_acc"),
            "test_acc": _stat(row, "test_acc"),
            "versus_best": _versus_best(paired[row["config_id"]], best.iloc[0]["config_id"]),
            # a pick on the edge of the range its family was searched over: the best may lie beyond
            "grid_edges": (
                edge_warnings(experiment.spec, row["optimizer"], hps)
                if experiment.spec is not None
                else []
            ),
        }
    return {
        "format": FORMAT,
        "provenance": {**_provenance(experiment, select_on), "comparison": _comparison(table)},
        "optimizers": dict(sorted(optimizers.items())),
    }


def export_defaults(
    experiment: Experiment, out: str, select_on: SelectOn = "val"
) -> dict[str, Any]:
    """Write the defaults of ``experiment`` to ``out`` atomically and return them."""
    document = defaults_from_experiment(experiment, select_on)
    write_yaml_atomic(out, document)
    return document


def load_defaults(path: str) -> dict[str, Any]:
    """Read and validate a defaults file; every error names the file, the field and the value."""
    if not os.path.isfile(path):
        raise ConfigError("--defaults", path, "no such file")
    try:
        with open(path, encoding="utf-8") as handle:
            # read as space files are: 5e-4 is a number, a key set twice is an error
            document = yaml.load(handle, Loader=SpaceLoader)  # noqa: S506 (a SafeLoader)
    except (UnicodeDecodeError, PermissionError) as err:
        raise ConfigError(
            "--defaults", path, f"cannot read the file ({type(err).__name__})"
        ) from None
    except ConfigError as err:
        raise err.in_file(path) from None
    except yaml.YAMLError as err:
        raise ConfigError(
            "yaml", str(getattr(err, "problem_mark", "")), "not valid YAML", file=path
        ) from None
    if not isinstance(document, dict):
        raise ConfigError("(top level)", document, "must be a mapping", file=path)
    if document.get("format") != FORMAT:
        raise ConfigError("format", document.get("format"), f"must be {FORMAT!r}", file=path)
    optimizers = document.get("optimizers")
    if not isinstance(optimizers, dict) or not optimizers:
        raise ConfigError(
            "optimizers",
            optimizers,
            "must be a non-empty mapping of optimizer -> settings",
            file=path,
        )
    for name, entry in optimizers.items():
        field = f"optimizers.{name}"
        if name not in OPTIMIZERS:
            raise ConfigError(
                field, name, "unknown optimizer", file=path, choices=sorted(OPTIMIZERS)
            )
        if not isinstance(entry, dict) or not isinstance(entry.get("hparams"), dict):
            raise ConfigError(f"{field}.hparams", entry, "must be a mapping of fields", file=path)
        try:
            resolve_hparams(name, entry["hparams"])
        except ConfigError as err:
            raise err.in_file(path, f"{field}.hparams") from None
    return document


def defaults_space(
    path: str,
    *,
    model: str | None,
    dataset: str | None,
    data_root: str | None = None,
    download: bool | None = None,
    train_limit: int | None = None,
    val_fraction: float | None = None,
    epochs: int | None = None,
    seeds: int | None = None,
    seed_start: int | None = None,
    **overrides: Any,
) -> SweepSpec:
    """A sweep that trains each optimizer of the defaults file at ``path`` on ``model``/``dataset``
    with no tuning: one configuration per optimizer, ``seeds`` seeds (5, as in the paper);
    ``data_root``, ``download``, ``train_limit`` and ``val_fraction`` go to the space's ``train``
    section, where the space's checks validate them. ``overrides`` are the other keyword arguments of
    :func:`~taso_tune.spaces.with_overrides` (``name``, ``scheduler``, ``cpus``, ...).

    The seeds are fresh: they start above every seed that selected the defaults (the file's
    ``provenance.seeds``), so a confirmation run is not the selection's maximum again; ``seed_start``
    chooses them by hand.

    ``model``, ``dataset`` and ``data_root`` are the caller's (the command line's), not the file's:
    an error about one of them names its flag (see :func:`naming_the_flags`)."""
    with naming_the_flags(path):
        return with_overrides(
            _defaults_space(
                path,
                model=model,
                dataset=dataset,
                data_root=data_root,
                download=download,
                train_limit=train_limit,
                val_fraction=val_fraction,
                epochs=epochs,
                seeds=seeds,
                seed_start=seed_start,
            ),
            **overrides,
        )


#: The space fields a defaults space takes from its caller's flags, not from the defaults file.
FLAG_OF_FIELD = {
    "train.model": "--model",
    "train.dataset": "--dataset",
    "train.data_root": "--data-root",
}


@contextmanager
def naming_the_flags(path: str) -> Iterator[None]:
    """Re-raise an error that blames the defaults file at ``path`` for a field of
    :data:`FLAG_OF_FIELD` as an error about that flag, which set it. Wraps building the space and
    also running it: a data root is only read when the sweep loads its data."""
    try:
        yield
    except ConfigError as err:
        flag = FLAG_OF_FIELD.get(err.field)
        if flag is None or err.file != path:
            raise
        raise ConfigError(flag, err.value, err.problem, choices=err.choices) from None


def _defaults_space(
    path: str,
    *,
    model: str | None,
    dataset: str | None,
    data_root: str | None,
    download: bool | None,
    train_limit: int | None,
    val_fraction: float | None,
    epochs: int | None,
    seeds: int | None,
    seed_start: int | None,
) -> SweepSpec:
    document = load_defaults(path)
    if not model or not dataset:
        raise ConfigError(
            "--model/--dataset",
            (model, dataset),
            "both are required: the pair to train on",
            file=path,
        )
    provenance = document.get("provenance") or {}
    planned = epochs or (provenance.get("epochs", 100) if isinstance(provenance, dict) else None)
    if isinstance(planned, bool) or not isinstance(planned, int) or planned < 1:
        raise ConfigError(
            "provenance.epochs", planned, "must be an integer >= 1 (or give --epochs)", file=path
        )
    train: dict[str, Any] = {"model": model, "dataset": dataset, "epochs": planned}
    if data_root:
        train["data_root"] = data_root
    if download:
        train["download"] = True
    if train_limit is not None:
        train["train_limit"] = train_limit
    if val_fraction is not None:
        train["val_fraction"] = val_fraction
    blocks = [
        {"optimizer": name, **entry["hparams"]} for name, entry in document["optimizers"].items()
    ]
    space = {
        # a folder name: torchvision/NAME and package.module:callable keep their words, not / and :
        "name": re.sub(r"[/:]+", "-", f"defaults-{model}-{dataset}"),
        "description": f"defaults from {path} applied without tuning",
        "train": train,
        "seeds": {
            "count": seeds or 5,
            "start": _fresh_seed_start(provenance) if seed_start is None else seed_start,
        },
        "scheduler": "none",
        "blocks": blocks,
    }
    return load_space_dict(space, source=path)


def _fresh_seed_start(provenance: Mapping[str, Any]) -> int:
    """The first seed above those that selected the defaults (0 when the file does not say)."""
    used = provenance.get("seeds")
    if isinstance(used, list) and used and all(isinstance(s, int) for s in used):
        return max(used) + 1
    return 0
