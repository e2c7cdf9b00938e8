"""A trial's report read back from its ``result.json``, checked against :class:`TrialReport`.

Each field's type comes from the TypedDicts of :mod:`taso_tune.core.records`, so a new field is
checked as soon as it is declared there. What must be finite, and what may not be:

- accuracies are finite always (a share of correct answers, even from a diverged model);
- a loss may be ``NaN`` or ``inf``: a seed that diverged reports the loss that ended it, and a seed
  still running may evaluate to an overflowing test loss (the summary then scores it at chance);
- the summary's ``lr`` is ``NaN`` once every seed diverged (no seed runs on to have one);
- ``images_per_second`` is ``NaN`` for an epoch too short to time;
- a seed's ``status`` is one of :data:`~taso_tune.core.records.RunStatus`.

Ray Tune's own keys beside the report (``training_iteration``, ``time_total_s``, ...) are left to
Tune, except ``trial_id``, which the readers match folders by.
"""

from __future__ import annotations

import math
import numbers
import typing
from collections.abc import Mapping
from typing import Any, NotRequired

from taso_tune.core.errors import DamagedResults
from taso_tune.core.records import EpochRecord, RunStatus, TrialReport

RUN_STATUSES: tuple[str, ...] = typing.get_args(RunStatus)


def _required(record_type: type) -> frozenset[str]:
    """The fields of the TypedDict ``record_type`` not marked ``NotRequired`` (its
    ``__required_keys__`` cannot tell while the annotations are text)."""
    hints = typing.get_type_hints(record_type, include_extras=True)
    return frozenset(k for k, v in hints.items() if typing.get_origin(v) is not NotRequired)


_REPORT_TYPES = typing.get_type_hints(TrialReport)
_REPORT_REQUIRED = _required(TrialReport)
_EPOCH_TYPES = typing.get_type_hints(EpochRecord)
_EPOCH_REQUIRED = _required(EpochRecord)
#: Fields that are counts, and the least each may be.
_LEAST = {
    "epoch": 1,
    "total_epochs": 1,
    "planned_epochs": 1,
    "batch_size": 1,
    "num_classes": 1,
    "seeds_diverged": 0,
}


def _may_be_non_finite(name: str, record: Mapping[str, Any], summary: bool) -> bool:
    """Whether field ``name`` of ``record`` may hold ``NaN`` or ``inf`` (module docstring)."""
    if name.endswith(("_loss", "_loss_std")) or name == "images_per_second":
        return True
    return summary and name == "lr" and record.get("diverged") is True


def _problem(expected: Any, value: Any) -> str | None:
    """What is wrong with ``value`` as a value of the annotation ``expected`` (``None``: nothing)."""
    origin = typing.get_origin(expected) or expected
    if expected is float:
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return None if real else "must be a number"
    if expected is int:
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return None if integral else "must be an integer"
    if expected is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if expected is str:
        return None if isinstance(value, str) else "must be text"
    if origin is typing.Literal:
        choices = typing.get_args(expected)
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"
    if origin is list:
        if not isinstance(value, list):
            return "must be a list"
        (item,) = typing.get_args(expected)
        return next((f"item {v!r}: {p}" for v in value if (p := _problem(item, v))), None)
    if origin is dict:
        if not isinstance(value, dict):
            return "must be a mapping"
        _key, item = typing.get_args(expected)
        if item is Any:
            return None
        return next((f"{k}: {p}" for k, v in value.items() if (p := _problem(item, v))), None)
    return None


def _check_fields(
    record: Mapping[str, Any],
    types: Mapping[str, Any],
    required: frozenset[str],
    prefix: str,
    file: str,
    line: int,
    summary: bool,
) -> None:
    for name, expected in types.items():
        field = f"line {line}: {prefix}{name}"
        if name not in record:
            if name in required:
                raise DamagedResults(field, None, "is missing from the trial's report", file=file)
            continue
        value = record[name]
        problem = _problem(expected, value)
        if problem is None and expected in (float, int) and name in _LEAST:
            problem = f"must be >= {_LEAST[name]}" if value < _LEAST[name] else None
        if (
            problem is None
            and expected is float
            and not math.isfinite(value)
            and not _may_be_non_finite(name, record, summary)
        ):
            problem = "must be finite"
        if problem is not None:
            raise DamagedResults(field, value, problem, file=file)


def check_trial_report(record: Any, file: str, line: int) -> TrialReport:
    """``record`` (line ``line`` of the ``result.json`` at ``file``) as a :class:`TrialReport`.

    Raises:
        DamagedResults: naming the file, the line and the first field of the wrong type, missing,
            non-finite where it must be finite, or of an unknown status.
    """
    if not isinstance(record, dict):
        raise DamagedResults(
            f"line {line}", record, "is not a JSON object, not a trial's report", file=file
        )
    _check_fields(
        record,
        {k: v for k, v in _REPORT_TYPES.items() if k != "per_seed"},
        _REPORT_REQUIRED,
        "",
        file,
        line,
        summary=True,
    )
    if "trial_id" in record and not isinstance(record["trial_id"], str):
        raise DamagedResults(
            f"line {line}: trial_id", record["trial_id"], "must be text", file=file
        )
    per_seed = record.get("per_seed")
    if not isinstance(per_seed, dict):
        raise DamagedResults(f"line {line}: per_seed", per_seed, "must be a mapping", file=file)
    for seed, own in per_seed.items():
        if not isinstance(own, dict):
            raise DamagedResults(
                f"line {line}: per_seed.{seed}", own, "must be a mapping", file=file
            )
        _check_fields(
            own,
            _EPOCH_TYPES,
            _EPOCH_REQUIRED,
            f"per_seed.{seed}.",
            file,
            line,
            summary=False,
        )
    return record  # type: ignore[return-value]  (checked above)
