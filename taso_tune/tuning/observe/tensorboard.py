"""TensorBoard files a person can read: the epoch metrics as scalars, the trials in the HParams view.

Ray Tune's own TensorBoard logger writes every reported number as a scalar under ``ray/tune/`` and,
when a trial ends, the trial's *config* as its hparams together with an experiment summary of its
own: for a taso-tune trial that is one opaque ``trial`` dict, and TensorBoard's HParams view reads
the experiment summary of one trial only, so it would offer only that trial's hyperparameters.

Here the driver writes the sweep's one experiment summary (:func:`write_experiment_summary`, the
:data:`~taso_tune.core.records.HPARAMS_FILE` at the experiment's top): every hyperparameter any
trial of the sweep can have, each optimizer's included, with the values or the interval the space
gives it, and the metrics. The trial's name, its optimizer, ``lr`` and the fields the space varies
are ticked by default (a resume writes it where it is missing: :func:`ensure_experiment_summary`).
:class:`HParamsLogger` keeps Ray's scalars (the epoch metrics, their std
over seeds and each seed's own under ``per_seed/``) without the labels, and writes for each trial
that ends only its session: the trial's name (TensorBoard's *Trial ID*), its optimizer, each
resolved hyperparameter (recipe defaults included), the seeds, the model and data.
``tensorboard --logdir EXPERIMENT`` shows them.
"""

from __future__ import annotations

import math
import posixpath
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import pyarrow.fs
from ray.tune.logger import TBXLoggerCallback

from taso_tune.core.records import HPARAMS_FILE, LABEL_FIELDS, METRICS, TrialReport
from taso_tune.core.storage import filesystem, write_experiment_file
from taso_tune.spaces import SweepSpec, Value
from taso_tune.training.optimizers import OPTIMIZERS
from taso_tune.training.run import TrainConfig
from taso_tune.tuning.trials import seed_groups

#: The prefix Ray Tune's logger gives every scalar.
SCALAR_PREFIX = "ray/tune/"
#: Scalars the HParams view shows beside the hparams: each metric, its std over seeds, the epoch.
HPARAM_METRICS: tuple[str, ...] = (*METRICS, *(f"{m}_std" for m in METRICS), "epoch")
#: The hparams of a trial that describe its run rather than its optimizer.
LABEL_HPARAMS = ("model", "dataset", "batch_size")
#: Ticked in the HParams view before the fields the space varies.
SHOWN_FIRST = ("trial", "optimizer", "lr")
#: TensorBoard's HParams view ticks this many hyperparameters when it opens, those whose summary
#: says they differ first (then in name order).
SHOWN_COUNT = 5
#: ``differs = true`` (field 7 of TensorBoard's ``HParamInfo``), which tensorboardX's copy of the
#: proto lacks: appended to a serialised ``HParamInfo`` it is kept and written out as it is.
_DIFFERS = b"\x38\x01"

HParamValue = str | float | bool


def hparam_value(value: Any) -> HParamValue | None:
    """A value as TensorBoard shows it: numbers (as floats), text and booleans as they are, a list or
    tuple (Adam's betas) as text; ``None`` for nothing to show."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return None


def trial_hparams(result: TrialReport, name: str) -> dict[str, HParamValue]:
    """The hparams of the trial ``name`` from one of its reports (its labels): its name, optimizer,
    resolved hyperparameters, seeds, model, data set and batch size."""
    seeds = [int(s) for s in result.get("seeds") or []]
    hparams: dict[str, Any] = {
        "trial": name,
        "optimizer": result.get("optimizer", ""),
        "seeds": ",".join(map(str, seeds)),
        "n_seeds": len(seeds),
        "model": result.get("model", ""),
        "dataset": result.get("dataset", ""),
        "batch_size": result.get("batch_size", 0),
        **dict(sorted((result.get("hp") or {}).items())),
    }
    shown = {k: hparam_value(v) for k, v in hparams.items()}
    return {k: v for k, v in shown.items() if v is not None}


@dataclass
class PlannedValues:
    """The values one hparam takes over a sweep's plan: a set, and the intervals of distributions."""

    values: set[HParamValue] = field(default_factory=set)
    intervals: list[tuple[float, float]] = field(default_factory=list)

    def add(self, value: Value) -> None:
        if value.is_distribution:
            low, high = value.options
            self.intervals.append((float(low), float(high)))
            return
        for option in value.options:
            shown = hparam_value(option)
            if shown is not None:
                self.values.add(shown)


def planned_hparams(spec: SweepSpec) -> dict[str, PlannedValues]:
    """Every hparam a trial of ``spec`` can have (:func:`trial_hparams`) with the values the space
    gives it: each block's optimizers with their recipe's fields (the defaults, or the block's own
    values, distributions as intervals), the seeds, the model and data. The trial's name has no set
    of values (Optuna names its trials as it proposes them)."""
    plan: dict[str, PlannedValues] = {"trial": PlannedValues()}

    def add(name: str, value: Value) -> None:
        plan.setdefault(name, PlannedValues()).add(value)

    groups = seed_groups(spec)
    add("seeds", Value("grid", tuple(",".join(map(str, g)) for g in groups)))
    add("n_seeds", Value("grid", tuple(len(g) for g in groups)))
    train_defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    for block in spec.blocks:
        for label in LABEL_HPARAMS:
            fixed = Value("fixed", (spec.train.get(label, train_defaults.get(label)),))
            add(label, block.get(label, fixed))
        for optimizer in block["optimizer"].options:
            add("optimizer", Value("fixed", (optimizer,)))
            for name, default in OPTIMIZERS[optimizer].defaults.items():
                add(name, block.get(name, Value("fixed", (default,))))
    # a field no trial gives a value (TASO's lr_final: None, derived from lr) is not shown
    return {k: v for k, v in plan.items() if k == "trial" or v.values or v.intervals}


def shown_by_default(spec: SweepSpec, names: Iterable[str]) -> list[str]:
    """The hparams ticked when the HParams view opens: :data:`SHOWN_FIRST`, then the fields the
    space's blocks vary, in name order, up to :data:`SHOWN_COUNT`."""
    names = set(names)
    varied = {k for block in spec.blocks for k, v in block.items() if v.varied}
    ordered = [n for n in SHOWN_FIRST if n in names]
    ordered += sorted(n for n in varied & names if n not in ordered)
    return ordered[:SHOWN_COUNT]


def experiment_summary(spec: SweepSpec) -> bytes:
    """The serialised ``Summary`` of the sweep's HParams experiment: an ``HParamInfo`` with the type
    and domain of every hparam of :func:`planned_hparams` (the values as a discrete set, or the
    interval covering them when a distribution gives some; text, numbers and booleans never mixed
    in one domain), and the metrics (the sweep's own first)."""
    from google.protobuf.struct_pb2 import ListValue
    from tensorboardX.proto.api_pb2 import (
        DataType,
        Experiment,
        HParamInfo,
        Interval,
        MetricInfo,
        MetricName,
    )
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    plan = planned_hparams(spec)
    shown = set(shown_by_default(spec, plan))
    infos = []
    for name, planned in sorted(plan.items()):
        info = HParamInfo(name=name)
        kinds = {_kind(v) for v in planned.values} | ({"number"} if planned.intervals else set())
        if name == "trial" or kinds == {"str"}:
            info.type = DataType.DATA_TYPE_STRING
        elif kinds == {"bool"}:
            info.type = DataType.DATA_TYPE_BOOL
        elif kinds == {"number"}:
            info.type = DataType.DATA_TYPE_FLOAT64
        if planned.intervals:
            numbers = [v for v in planned.values if isinstance(v, float)]
            low = min([lo for lo, _ in planned.intervals] + numbers)
            high = max([hi for _, hi in planned.intervals] + numbers)
            if kinds == {"number"}:
                info.domain_interval.CopyFrom(Interval(min_value=low, max_value=high))
        elif planned.values and len(kinds) == 1:
            info.domain_discrete.CopyFrom(ListValue(values=[]))
            info.domain_discrete.extend(sorted(planned.values))  # type: ignore[type-var]
        if name in shown:
            info.MergeFromString(_DIFFERS)
        infos.append(info)
    metrics = sorted(HPARAM_METRICS, key=lambda m: m != spec.metric)
    experiment = Experiment(
        time_created_secs=time.time(),
        hparam_infos=infos,
        metric_infos=[MetricInfo(name=MetricName(tag=f"{SCALAR_PREFIX}{m}")) for m in metrics],
    )
    return _summary("_hparams_/experiment", HParamsPluginData(experiment=experiment, version=0))


def _kind(value: HParamValue) -> str:
    return "bool" if isinstance(value, bool) else "str" if isinstance(value, str) else "number"


def _summary(tag: str, content: Any) -> bytes:
    """A ``Summary`` holding the hparams plugin's ``content`` under ``tag``, serialised."""
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    metadata = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(
            plugin_name="hparams", content=content.SerializeToString()
        )
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata)]).SerializeToString()


def event_file(summaries: Iterable[bytes]) -> bytes:
    """An event file holding ``summaries`` (serialised ``Summary`` protos) at step 0: TFRecord
    framing (length, masked CRC-32C of it, data, masked CRC-32C of it), the version event first."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary
    from tensorboardX.record_writer import masked_crc32c

    now = time.time()
    events = [Event(wall_time=now, file_version="brain.Event:2")]
    events += [Event(wall_time=now, step=0, summary=Summary.FromString(s)) for s in summaries]
    records = []
    for event in events:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        records.append(
            header
            + struct.pack("<I", masked_crc32c(header))
            + data
            + struct.pack("<I", masked_crc32c(data))
        )
    return b"".join(records)


def write_experiment_summary(experiment: str, spec: SweepSpec) -> None:
    """Write the sweep's HParams experiment (:func:`experiment_summary`) at the top of
    ``experiment``, atomically; the driver does, once, before the first trial."""
    write_experiment_file(experiment, HPARAMS_FILE, event_file([experiment_summary(spec)]))


def ensure_experiment_summary(experiment: str, spec: SweepSpec) -> bool:
    """Write the sweep's HParams experiment where ``experiment`` has none (a sweep stopped before it
    was written, or one from before taso-tune wrote it): a resume does, before its trials start.
    Whether it wrote one."""
    fs, root = filesystem(experiment)
    path = posixpath.join(root.rstrip("/"), HPARAMS_FILE)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.File:
        return False
    write_experiment_summary(experiment, spec)
    return True


def session_summaries(
    hparams: Mapping[str, HParamValue], group: str, failed: bool
) -> tuple[bytes, bytes]:
    """The serialised start and end of a trial's HParams session: its ``hparams``, ``group`` (the
    view's Trial ID) and whether it failed."""
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import (
        HParamsPluginData,
        SessionEndInfo,
        SessionStartInfo,
    )

    start = SessionStartInfo(group_name=group)
    for name, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
        elif isinstance(value, str):
            start.hparams[name].string_value = value
        else:
            start.hparams[name].number_value = value
    end = SessionEndInfo(
        status=Status.STATUS_FAILURE if failed else Status.STATUS_SUCCESS, end_time_secs=time.time()
    )
    return (
        _summary("_hparams_/session_start_info", HParamsPluginData(session_start_info=start)),
        _summary("_hparams_/session_end_info", HParamsPluginData(session_end_info=end)),
    )


class HParamsLogger(TBXLoggerCallback):
    """Ray Tune's TensorBoard logger with taso-tune's hparams (it replaces Tune's default one).

    ``group_prefix`` goes before each trial's name in the HParams view's Trial ID (budget-sh: the
    rung, so a configuration's rungs stay apart)."""

    # class defaults too: a resumed sweep restores the logger pickled with its Tuner, which may
    # predate an attribute
    group_prefix = ""
    _ending_failed = False

    def __init__(self, group_prefix: str = "") -> None:
        super().__init__()
        self.group_prefix = group_prefix
        self._last: dict[Any, TrialReport] = {}

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        self._last[trial] = result  # type: ignore[assignment]  (a TrialReport and Tune's keys)
        # the labels are text and lists: as scalars or histograms they would only be noise
        scalars = {k: v for k, v in result.items() if k not in LABEL_FIELDS}
        super().log_trial_result(iteration, trial, scalars)

    def log_trial_end(self, trial, failed: bool = False) -> None:
        self._ending_failed = failed
        try:
            super().log_trial_end(trial, failed)
        finally:
            self._ending_failed = False
            self._last.pop(trial, None)

    def _try_log_hparams(self, trial, result: dict) -> None:
        # called by Tune's logger when the trial ends; the experiment is the driver's (HPARAMS_FILE)
        from tensorboardX.proto.summary_pb2 import Summary

        last = self._last.get(trial)
        if not last:
            return
        name = str(trial)
        summaries = session_summaries(
            trial_hparams(last, name), f"{self.group_prefix}{name}", self._ending_failed
        )
        writer = self._trial_writer[trial].file_writer
        for summary in summaries:
            writer.add_summary(Summary.FromString(summary))
