"""The one reader of an experiment folder (:mod:`~taso_tune.experiment.layout`), local or at a URI:
Ray Tune's state of each run (every trial's status), each trial's reports (its ``result.json``, as
:class:`~taso_tune.core.records.TrialReport` records), and the space file as a
:class:`~taso_tune.spaces.SweepSpec`. Without Ray: the driver's counts, the results and the report
all read through it.

An experiment whose own Tune state was lost and whose lost trials ``resume --rerun-lost`` trains
again (:data:`~taso_tune.experiment.layout.RERUN_FILE`) still reads as one experiment: its run keeps
the finished trials, with the status they had (not the lost trials' folders, nor those whose
``result.json`` the rerun found damaged), and the rerun's run (``rerun-lost/``) gives each lost
trial once, its reports up to the checkpoint it continued from followed by the rerun's own.

One error policy: a file that is missing is ``None`` or empty; a file that is there but is not what
taso-tune or Ray Tune writes is a :class:`~taso_tune.core.errors.DamagedResults` (a
:class:`~taso_tune.core.errors.ConfigError`) naming the file, and for ``result.json`` the line and
the field. A caller that can go on without the file (a count after an interrupt) catches it.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pyarrow.fs
import yaml

from taso_tune.core.errors import ConfigError, DamagedResults
from taso_tune.core.records import TrialReport
from taso_tune.core.storage import filesystem, read_text, result_records
from taso_tune.experiment.layout import (
    ERROR_FILE,
    FROM_CHECKPOINT,
    RERUN_FILE,
    RERUN_FOLDER,
    RESULT_FILE,
    SPACE_FILE,
    is_checkpoint_name,
    is_tune_state,
    rung_index,
    trial_checkpoint,
)
from taso_tune.spaces import SweepSpec, load_space_dict

#: Ray Tune's status of a trial that ended (ran its epochs, or was stopped early or diverged).
FINISHED = "TERMINATED"


@dataclass(frozen=True)
class TuneRun:
    """One Ray Tune run of an experiment: the experiment folder itself, or a budget-sh rung's."""

    folder: str
    rung: int | None  # the rung index; ``None`` for the experiment's own run
    rerun: bool = False  # the run of the trials a lost state held (``resume --rerun-lost``)


@dataclass(frozen=True)
class RerunTrial:
    """One lost trial that ``resume --rerun-lost`` trains again."""

    trial: dict[str, Any]  # the rerun trial's flat config (as a grid trial carries it)
    lost: str | None  # the lost trial's folder in the experiment's run; ``None``: it never reported
    from_epoch: int  # the epochs of the checkpoint it continues from (0: from the start)


@dataclass(frozen=True)
class RerunRecord:
    """What ``resume --rerun-lost`` decided (:data:`~taso_tune.experiment.layout.RERUN_FILE`)."""

    state: str  # the unreadable Tune state, kept as ``damaged-<state>`` ('': Tune saved none)
    kept: dict[str, str]  # trial_id -> folder of each finished trial kept
    trials: list[RerunTrial]
    # folders of the run whose result.json cannot be read: left out of the experiment's results
    damaged: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        trials = [
            {"trial": t.trial, "lost": t.lost, "from_epoch": t.from_epoch} for t in self.trials
        ]
        record = {
            "state": self.state,
            "kept": self.kept,
            "trials": trials,
            "damaged": self.damaged,
        }
        return json.dumps(record, indent=2, sort_keys=True) + "\n"


def _checked_trial(trial: RerunTrial) -> RerunTrial:
    """``trial`` as the record holds it, its checkpoint a ``<trial folder>/checkpoint_<n>`` of the
    experiment's own run (anything else would have the rerun load a file from elsewhere)."""
    checkpoint = trial.trial.get(FROM_CHECKPOINT)
    if checkpoint is not None and (
        not isinstance(checkpoint, str) or trial_checkpoint(checkpoint) is None
    ):
        raise ValueError(f"{FROM_CHECKPOINT} {checkpoint!r} is not <trial folder>/checkpoint_<n>")
    if trial.lost is not None and (not isinstance(trial.lost, str) or "/" in trial.lost):
        raise ValueError(f"lost {trial.lost!r} is not a trial folder's name")
    return trial


@dataclass(frozen=True)
class TrialResults:
    """One trial folder of a Tune run: what the trial reported and how it stands."""

    name: str  # the folder's name: Tune's trial name, ending in ``_<trial_id>``
    folder: str
    rung: int | None
    reports: list[TrialReport]  # each epoch once, in order
    tune_status: str  # PENDING, RUNNING, TERMINATED, ERROR, ...; '' when Tune saved none
    has_error: bool  # Tune wrote the trial's error.txt

    @property
    def trial_id(self) -> str:
        return str(self.reports[-1].get("trial_id", "")) if self.reports else ""


def _other_run(name: str) -> bool:
    """Whether a folder at the experiment's top named ``name`` is a Tune run of its own."""
    return rung_index(name) is not None or name == RERUN_FOLDER


class ExperimentReader:
    """Reads the experiment folder ``path`` (a local path or a storage URI); with ``written_by``
    (seconds since the epoch), its trials' reports as they stood then
    (:func:`~taso_tune.core.storage.result_records`)."""

    def __init__(self, path: str, written_by: float | None = None) -> None:
        self.path = path
        self.written_by = written_by
        self.fs, root = filesystem(path)
        self.root = root.rstrip("/") or root

    def _written_later(self, path: str) -> bool:
        """Whether the file at ``path`` was written after ``written_by`` (never, without one)."""
        if self.written_by is None:
            return False
        mtime = self.fs.get_file_info(path).mtime
        return mtime is not None and mtime.timestamp() > self.written_by

    def exists(self) -> bool:
        """Whether the experiment folder is there."""
        return self.fs.get_file_info(self.root).type == pyarrow.fs.FileType.Directory

    def _entries(self, folder: str) -> list[pyarrow.fs.FileInfo]:
        return self.fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))

    def runs(self) -> list[TuneRun]:
        """The experiment's Tune runs: its own, then each budget-sh rung's in rung order, then the
        rerun of its lost trials (:meth:`rerun`)."""
        rungs = sorted(
            (index, info.path)
            for info in self._entries(self.root)
            if info.type == pyarrow.fs.FileType.Directory
            and (index := rung_index(posixpath.basename(info.path))) is not None
        )
        runs = [TuneRun(self.root, None), *(TuneRun(path, index) for index, path in rungs)]
        if self.rerun is not None:
            runs.append(TuneRun(posixpath.join(self.root, RERUN_FOLDER), None, rerun=True))
        return runs

    @cached_property
    def rerun(self) -> RerunRecord | None:
        """What ``resume --rerun-lost`` decided; ``None`` when it never ran here.

        Raises:
            DamagedResults: the file is there but is not what taso-tune writes.
        """
        path = posixpath.join(self.root, RERUN_FILE)
        text = read_text(self.fs, path)
        if text is None or self._written_later(path):
            return None
        try:
            data = json.loads(text)
            trials = [
                _checked_trial(RerunTrial(dict(t["trial"]), t["lost"], int(t["from_epoch"])))
                for t in data["trials"]
            ]
            damaged = [str(name) for name in data.get("damaged", [])]
            if any("/" in name or name in ("", ".", "..") for name in damaged):
                raise ValueError(f"damaged {damaged!r} are not trial folders' names")
            return RerunRecord(str(data["state"]), dict(data["kept"]), trials, damaged)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            why = f": {err}" if type(err) is ValueError and str(err) else ""
            raise DamagedResults(
                "experiment",
                self.path,
                f"its {RERUN_FILE} cannot be read ({type(err).__name__}{why}): not what "
                "taso-tune wrote",
            ) from None

    def tune_statuses(self, run: TuneRun) -> dict[str, str] | None:
        """trial_id -> Ray Tune's status of each trial in the newest saved state of ``run``;
        ``None`` when Tune saved no state there.

        The experiment's own run, once its lost trials are rerun (:meth:`rerun`), holds the kept
        trials, each ``TERMINATED`` as Tune had it; its unreadable state is not read again.

        Raises:
            DamagedResults: the state is there but is not Tune's JSON (Tune could not restore it
                either: it would start every trial again).
        """
        if run.folder == self.root and self.rerun is not None:
            return dict.fromkeys(self.rerun.kept, FINISHED)
        states = sorted(
            info.path
            for info in self._entries(run.folder)
            if info.type == pyarrow.fs.FileType.File
            and is_tune_state(posixpath.basename(info.path))
        )
        if not states:
            return None
        try:
            data = json.loads(read_text(self.fs, states[-1]) or "{}")
            trials = [json.loads(trial) for trial, _runtime in data.get("trial_data", [])]
            return {str(t["trial_id"]): str(t.get("status", "")) for t in trials}
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise DamagedResults(
                "experiment",
                self.path,
                f"its Ray Tune state {posixpath.basename(states[-1])} cannot be read "
                f"({type(err).__name__})",
            ) from None

    def reports(self, trial_folder: str) -> list[TrialReport]:
        """The checked reports in ``trial_folder``'s ``result.json`` (none when it has none yet):
        :func:`~taso_tune.core.storage.result_records`."""
        path = posixpath.join(trial_folder, RESULT_FILE)
        text = read_text(self.fs, path)
        return result_records(text, path, self.written_by) if text else []

    def trial_folders(self, run: TuneRun, only: set[str] | None = None) -> list[str]:
        """The trial folders of ``run``; ``only``: just those of these trial ids (a trial folder's
        name ends in ``_<trial_id>``; Tune's ids hold a '_', so the end of the name is matched).
        The folders of lost trials that a rerun trains again, and those whose ``result.json`` the
        rerun found damaged, are not the run's any more; nor, in the experiment's own run, are the
        folders of the other runs (budget-sh's rungs, the rerun)."""
        lost = set()
        if run.folder == self.root and self.rerun is not None:
            lost = {posixpath.join(self.root, t.lost) for t in self.rerun.trials if t.lost}
            lost |= {posixpath.join(self.root, name) for name in self.rerun.damaged}
        return sorted(
            info.path
            for info in self._entries(run.folder)
            if info.type == pyarrow.fs.FileType.Directory
            and info.path not in lost
            and not (run.folder == self.root and _other_run(posixpath.basename(info.path)))
            and (only is None or any(info.path.endswith(f"_{t}") for t in only))
        )

    def checkpoint_bytes(self, trial_folder: str) -> int:
        """The bytes of every file in ``trial_folder``'s checkpoint folders (``checkpoint_<n>``)."""
        total = 0
        for info in self._entries(trial_folder):
            if info.type == pyarrow.fs.FileType.Directory and is_checkpoint_name(info.base_name):
                selector = pyarrow.fs.FileSelector(info.path, recursive=True)
                total += sum(
                    f.size or 0
                    for f in self.fs.get_file_info(selector)
                    if f.type == pyarrow.fs.FileType.File
                )
        return total

    def _lost_reports(self, rerun: RerunTrial) -> list[TrialReport]:
        """The reports a lost trial keeps: those up to the checkpoint its rerun continues from."""
        if rerun.lost is None or rerun.from_epoch == 0:
            return []
        reports = self.reports(posixpath.join(self.root, rerun.lost))
        return [r for r in reports if r["epoch"] <= rerun.from_epoch]

    def _rerun_of(self, reports: list[TrialReport]) -> RerunTrial | None:
        """The lost trial a rerun trial trains again, by the config Tune reported it with."""
        config = (reports[-1].get("config") or {}).get("trial")
        return next((t for t in self.rerun.trials if t.trial == config), None)

    def trial(
        self, run: TuneRun, folder: str, statuses: dict[str, str] | None = None
    ) -> TrialResults | None:
        """The trial in ``folder`` of ``run`` with Tune's status from ``statuses``
        (:meth:`tune_statuses`); ``None`` when it has not reported yet. A rerun trial's reports
        begin with its lost trial's, up to the checkpoint it continued from."""
        reports = self.reports(folder)
        if not reports:
            return None
        if run.rerun and self.rerun is not None:
            lost = self._rerun_of(reports)
            if lost is not None:
                by_epoch = {r["epoch"]: r for r in [*self._lost_reports(lost), *reports]}
                reports = [by_epoch[k] for k in sorted(by_epoch)]
        trial_id = str(reports[-1].get("trial_id", ""))
        return TrialResults(
            name=posixpath.basename(folder),
            folder=folder,
            rung=run.rung,
            reports=reports,
            tune_status=(statuses or {}).get(trial_id, ""),
            has_error=self.fs.get_file_info(posixpath.join(folder, ERROR_FILE)).type
            == pyarrow.fs.FileType.File,
        )

    def trials(self, run: TuneRun) -> Iterator[TrialResults]:
        """Every trial of ``run`` that reported at least once, with Tune's status. In the rerun of
        lost trials, a lost trial its rerun has not reported for yet is read from its own folder,
        up to the checkpoint the rerun continues from (Tune's status unknown: unfinished)."""
        statuses = self.tune_statuses(run)
        rerun = []
        for folder in self.trial_folders(run):
            trial = self.trial(run, folder, statuses)
            if trial is not None:
                rerun.append(self._rerun_of(trial.reports) if run.rerun else None)
                yield trial
        if run.rerun and self.rerun is not None:
            for lost in self.rerun.trials:
                reports = self._lost_reports(lost)
                if lost not in rerun and reports:
                    folder = posixpath.join(self.root, lost.lost or "")
                    yield TrialResults(
                        posixpath.basename(folder), folder, run.rung, reports, "", False
                    )

    def all_trials(self) -> Iterator[TrialResults]:
        """Every trial of every run of the experiment that reported at least once."""
        for run in self.runs():
            yield from self.trials(run)

    def space(self) -> SweepSpec | None:
        """The resolved space written beside the results; ``None`` when there is no space file.

        Raises:
            ConfigError: the file is there but is not a space taso-tune wrote.
        """
        path = posixpath.join(self.root, SPACE_FILE)
        try:
            text = read_text(self.fs, path)
            data = None if text is None else yaml.safe_load(text)
        except (UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigError(
                "experiment",
                self.path,
                f"its {SPACE_FILE} cannot be read ({type(err).__name__}): not a space taso-tune wrote",
            ) from None
        if text is None:
            return None
        if isinstance(data, dict):
            # written before ``reuse_actors: auto`` was the default, when a missing key meant false
            data.setdefault("reuse_actors", False)
        return load_space_dict(data, source=f"{self.path.rstrip('/')}/{SPACE_FILE}")


def read_space(experiment: str) -> SweepSpec:
    """The resolved space of the experiment at ``experiment``.

    Raises:
        ConfigError: no space file (not a taso-tune experiment folder), or one that cannot be read.
    """
    spec = ExperimentReader(experiment).space()
    if spec is None:
        raise ConfigError(
            "experiment", experiment, f"not a taso-tune experiment folder (no {SPACE_FILE})"
        )
    return spec
