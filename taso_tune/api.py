"""taso-tune from Python: what ``taso-tune sweep`` does, as one call for a notebook or a script.

    import taso_tune
    from my_models import small_cnn

    result = taso_tune.sweep("own_model.yaml", model=small_cnn, storage="runs")
    result.experiment, result.summary

``space`` is a space file or a dict in the file's form; ``model`` and ``dataset`` replace the space's
``train:`` fields and are names or callables. A callable is turned into its import string
(``module:name``) and checked the same way: Ray's workers import it by that name, so it must live in
an importable module, not in the notebook itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taso_tune.core.errors import ConfigError
from taso_tune.results.experiment import SelectOn, load_experiment
from taso_tune.results.outputs import write_outputs
from taso_tune.results.summary import format_summary
from taso_tune.spaces import SweepSpec, load_space_dict, read_yaml
from taso_tune.training.user_code import spec_of
from taso_tune.tuning.outcome import SweepOutcome

ModelOrData = str | Callable[..., Any]


@dataclass(frozen=True)
class SweepResult:
    """What a sweep left: its folder, how it went, and (when it ran to its end) the summary the
    command line prints and the report and defaults files written beside the results."""

    experiment: str
    outcome: SweepOutcome
    summary: str = ""  # empty when a signal or a full storage stopped the sweep
    report: str | None = None
    defaults: str | None = None
    why_not: str = ""  # why no defaults file was written, where none was


def _name(value: ModelOrData, field: str) -> str:
    return value if isinstance(value, str) else spec_of(value, field)


def space_of(
    space: str | os.PathLike[str] | Mapping[str, Any],
    *,
    model: ModelOrData | None = None,
    dataset: ModelOrData | None = None,
    data_root: str | None = None,
) -> SweepSpec:
    """The space ``space`` (a file or a dict in the file's form) with ``model``, ``dataset`` and
    ``data_root`` replacing its ``train:`` fields; checked as a space file is."""
    if isinstance(space, Mapping):
        data, source = dict(space), "space"
    elif isinstance(space, (str, os.PathLike)):
        data, source = read_yaml(os.fspath(space)), os.fspath(space)
    else:
        raise ConfigError("space", type(space).__name__, "must be a space file's path or a dict")
    if not isinstance(data, Mapping):
        return load_space_dict(data, source=source)  # refused there, by the usual rule
    train = dict(data.get("train") or {})
    blocks = data.get("blocks")
    for field, value in (("model", model), ("dataset", dataset), ("data_root", data_root)):
        if value is not None:
            train[field] = value if field == "data_root" else _name(value, field)
            for i, block in enumerate(blocks if isinstance(blocks, list) else []):
                if isinstance(block, Mapping) and field in block:
                    # a block's own value wins over train:, so the argument would train nowhere
                    raise ConfigError(
                        f"blocks[{i}].{field}",
                        block[field],
                        f"sets the {field} that the {field}= argument replaces: remove it from "
                        f"the block, or leave {field}= out",
                        file=source,
                    )
    return load_space_dict({**data, "train": train}, source=source)


def finished(
    outcome: SweepOutcome, select_on: SelectOn = "val", write_files: bool = True
) -> SweepResult:
    """The result of a sweep that ran: its summary and, when ``write_files``, its report and
    exported defaults (a local experiment only). A stopped sweep has neither."""
    if outcome.interrupted is not None or outcome.storage_fault is not None:
        return SweepResult(outcome.experiment_path, outcome)
    experiment = load_experiment(outcome.experiment_path)
    summary = format_summary(experiment, select_on)
    if not write_files:
        return SweepResult(outcome.experiment_path, outcome, summary)
    written = write_outputs(experiment, select_on)
    return SweepResult(
        outcome.experiment_path, outcome, summary, written.report, written.defaults, written.why_not
    )


def sweep(
    space: str | os.PathLike[str] | Mapping[str, Any],
    *,
    model: ModelOrData | None = None,
    dataset: ModelOrData | None = None,
    data_root: str | None = None,
    storage: str = "runs",
    name: str | None = None,
    address: str | None = None,
    select_on: SelectOn = "val",
    write_files: bool = True,
) -> SweepResult:
    """Run the sweep of ``space`` (see :func:`space_of`) into ``STORAGE/NAME`` on the Ray cluster
    at ``address`` (default: ``RAY_ADDRESS``, else a local Ray), as ``taso-tune sweep`` does;
    bad input raises :class:`~taso_tune.core.errors.ConfigError` before Ray starts."""
    from taso_tune.tuning import disconnect, run_sweep

    spec = space_of(space, model=model, dataset=dataset, data_root=data_root)
    outcome = run_sweep(spec, storage, name=name, address=address)
    disconnect()
    return finished(outcome, select_on, write_files)
