"""Recovery of an experiment folder whose Ray Tune state cannot be read, before a resume.

Ray Tune saves its experiment state (``experiment_state-<session>.json``: every trial, its status
and its checkpoints) in Ray's session folder on the driver's host, then copies it into the
experiment folder. taso-tune gives Tune atomic writes into local storage, so that copy is always a
whole one; a folder written otherwise (by an older taso-tune, or copied with ``cp``/``rsync`` onto a
disk that filled) can hold a truncated one, from which Tune would start every trial again.

:func:`recover_state` looks, for each Tune run of the experiment (the top folder, and each budget-sh
rung), whether its newest state can be read. Where it cannot, the last good copy is the one the
driver kept in Ray's session folder on this host: the newest readable copy of the same file that
only you could have written (the rule of :mod:`~taso_tune.experiment.trust`) is written back (atomically; the damaged one is kept beside it as ``damaged-<name>``) and resume goes on.
Where no such copy is left (or the experiment's own run has trial folders but no state: the disk
filled before Tune first saved it), resume stops with one line that says which trials are lost (the
unfinished ones: Tune no longer knows their checkpoints), which finished trials stay readable by
``report`` and ``export``, and how to go on: ``taso-tune resume EXPERIMENT --rerun-lost``. With
that flag, :func:`recover_state` returns what the experiment's own run lost (:class:`LostState`: the
finished trials kept, each lost trial's config and the last checkpoint its folder still holds),
:func:`set_aside` records the decision (:data:`~taso_tune.experiment.layout.RERUN_FILE`, read by
:class:`~taso_tune.experiment.reader.ExperimentReader`) and moves the unreadable state aside, and the
Ray layer trains the lost trials again as a Tune run of their own. It never trains every trial again.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import posixpath
import tempfile
from dataclasses import dataclass
from typing import Any

import pyarrow.fs

from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import filesystem, is_uri, read_text, write_experiment_file
from taso_tune.experiment.layout import (
    DAMAGED_PREFIX,
    RERUN_FILE,
    RERUN_FOLDER,
    RESULT_FILE,
    STATE_FILE,
    TUNE_STATE_PREFIX,
    is_checkpoint_name,
    is_tune_state,
    rung_index,
)
from taso_tune.experiment.reader import ExperimentReader, RerunRecord, TuneRun
from taso_tune.experiment.state import record_finished
from taso_tune.experiment.trust import untrusted

#: Where Ray keeps its session folders: ``$RAY_TMPDIR/ray``, else the system's temporary folder.
RAY_TMPDIR_ENV = "RAY_TMPDIR"


def _newest_state(fs: pyarrow.fs.FileSystem, folder: str) -> str | None:
    entries = fs.get_file_info(pyarrow.fs.FileSelector(folder))
    states = sorted(e.path for e in entries if is_tune_state(posixpath.basename(e.path)))
    return states[-1] if states else None


def _readable(text: str | None) -> bool:
    """Whether ``text`` is a Tune experiment state whose every trial can be read."""
    try:
        data = json.loads(text or "")
        trials = data["trial_data"]
        return isinstance(trials, list) and all(
            isinstance(json.loads(trial), dict) for trial, _runtime in trials
        )
    except (ValueError, TypeError, KeyError):
        return False


def session_copies(name: str) -> list[str]:
    """Copies of the Tune state file ``name`` in Ray's session folders on this host, newest first,
    each once (``session_latest`` is a link to the newest session folder)."""
    root = os.path.join(os.environ.get(RAY_TMPDIR_ENV) or tempfile.gettempdir(), "ray")
    pattern = os.path.join(root, "session_*", "artifacts", "*", "*", "driver_artifacts", name)
    copies = {os.path.realpath(path) for path in glob.glob(pattern)}
    return sorted(copies, key=os.path.getmtime, reverse=True)


@dataclass(frozen=True)
class LostTrial:
    """An unfinished trial of a run whose Tune state is lost."""

    folder: str  # its folder's name in the run
    config: dict[str, Any]  # Tune's config of the trial, as its reports carry it
    from_epoch: int  # the epochs of the last checkpoint its folder still holds (0: none)
    checkpoint: str | None  # that checkpoint's folder, relative to the experiment
    damaged: bool = False  # its result.json cannot be read: nothing says what it trained


@dataclass(frozen=True)
class LostState:
    """The experiment's own Tune run, whose state cannot be read and has no good copy left."""

    state: str  # the state's file name ('': Tune saved none)
    kept: dict[str, str]  # trial_id -> folder of each finished trial
    kept_configs: list[dict[str, Any]]  # Tune's config of each finished trial
    lost: list[LostTrial]


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover_state` did: a line for each state written back, and with ``rerun_lost``
    the experiment's own run whose state is lost (``None``: nothing lost)."""

    notes: list[str]
    lost: LostState | None = None


def recover_state(experiment: str, *, rerun_lost: bool = False) -> Recovery:
    """Make every Tune run of ``experiment`` resumable from its last good state.

    A run whose state cannot be read gets the driver's last good copy back. Where none is left, the
    experiment's own run is returned as :attr:`Recovery.lost` with ``rerun_lost`` (the caller reruns
    its lost trials); once they are rerun (:func:`set_aside`) its state is not read again.

    Raises:
        ConfigError: on ``experiment``, when a state cannot be read and no good copy is left (and
            ``rerun_lost`` cannot help): the line names the state, the trials lost, the finished
            trials kept and, for the experiment's own run, ``--rerun-lost``.
    """
    fs, root = filesystem(experiment)
    root = root.rstrip("/")
    if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
        return Recovery([])
    reader = ExperimentReader(experiment)
    folders = [
        e.path
        for e in fs.get_file_info(pyarrow.fs.FileSelector(root))
        if e.type == pyarrow.fs.FileType.Directory
        and (rung_index(e.base_name) is not None or e.base_name == RERUN_FOLDER)
    ]
    # once the lost trials are rerun, the experiment's own state is the record's, never read again
    own = [] if reader.rerun is not None else [root]
    notes, lost = [], None
    for folder in [*own, *sorted(folders)]:
        state = _newest_state(fs, folder)
        if state is None:
            # trial folders but no state: the disk filled before Tune's first copy of it
            if folder == root and reader.trial_folders(TuneRun(root, None)):
                if rerun_lost:
                    lost = _lost_state(reader, "")
                    continue
                raise ConfigError("experiment", experiment, _lost(reader, folder, "", None))
            continue
        try:
            text = read_text(fs, state)
        except UnicodeDecodeError:
            text = None
        if _readable(text):
            continue
        name = posixpath.basename(state)
        good = None if is_uri(experiment) else _good_copy(name)
        if good is None:
            if folder == root and rerun_lost:
                lost = _lost_state(reader, name)
                continue
            raise ConfigError("experiment", experiment, _lost(reader, folder, name, text))
        # kept for a look, under a name neither Tune nor taso-tune takes for a state
        fs.move(state, posixpath.join(folder, f"{DAMAGED_PREFIX}{name}"))
        write_experiment_file(folder, name, good[1])
        notes.append(f"{state}: damaged; restored the driver's last good copy from {good[0]}")
    return Recovery(notes, lost)


def set_aside(experiment: str, record: RerunRecord) -> None:
    """Record which trials are kept and which are rerun, then move the unreadable state aside (as
    ``damaged-<name>``): in that order, so that a driver stopped in between leaves the record,
    which the reader and resume follow from then on."""
    write_experiment_file(experiment, RERUN_FILE, record.to_json())
    fs, root = filesystem(experiment)
    state = posixpath.join(root.rstrip("/"), record.state)
    if record.state and fs.get_file_info(state).type == pyarrow.fs.FileType.File:
        fs.move(state, posixpath.join(root.rstrip("/"), f"{DAMAGED_PREFIX}{record.state}"))


def _good_copy(name: str) -> tuple[str, str] | None:
    """The newest readable copy of ``name`` in Ray's session folders that only you could have
    written (:func:`~taso_tune.experiment.trust.untrusted`: the file and its folders up to the
    session's ``artifacts``), as (its path, its text): Tune unpickles what it holds."""
    for path in session_copies(name):
        # SESSION/artifacts/<time>/<run>/driver_artifacts/NAME; the session folder itself is
        # writable by everyone (Ray makes it so), which a folder you own below it stops
        artifacts = path
        for _ in range(4):
            artifacts = os.path.dirname(artifacts)
        if untrusted(path, artifacts) is not None:
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError):
            continue
        if _readable(text):
            return path, text
    return None


def _trial_ends(reader: ExperimentReader, folder: str) -> LostState:
    """The trials of the Tune run in ``folder`` by their records: the finished ones and the
    unfinished ones (``state`` left empty). A trial whose ``result.json`` is damaged counts as
    unfinished, with no config to rerun it by."""
    finished, configs, unfinished = {}, [], []
    for path in reader.trial_folders(TuneRun(folder, None)):
        result = reader.fs.get_file_info(posixpath.join(path, RESULT_FILE))
        if result.type != pyarrow.fs.FileType.File:
            continue
        name = posixpath.basename(path)
        try:
            reports = reader.reports(path)
        except ConfigError:
            unfinished.append(LostTrial(name, {}, 0, None, damaged=True))
            continue
        if reports and record_finished(reports[-1]):
            finished[str(reports[-1].get("trial_id", ""))] = name
            configs.append(dict(reports[-1].get("config") or {}))
            continue
        from_epoch, checkpoint = _last_checkpoint(reader, path, reports)
        config = dict(reports[-1].get("config") or {}) if reports else {}
        unfinished.append(LostTrial(name, config, from_epoch, checkpoint))
    return LostState("", finished, configs, sorted(unfinished, key=lambda t: t.folder))


def _last_checkpoint(reader: ExperimentReader, path: str, reports: list) -> tuple[int, str | None]:
    """The newest checkpoint a trial reported that its folder still holds whole: (its epoch, its
    folder relative to the experiment); (0, ``None``) when none is left. Only a folder of the
    trial's own named as Ray Tune names them (``checkpoint_<n>``) counts: the name comes from the
    trial's ``result.json``, which nothing checks, and the rerun loads what it points to."""
    for report in reversed(reports):
        name = report.get("checkpoint_dir_name")
        if not isinstance(name, str) or not is_checkpoint_name(name):
            continue
        if reader.fs.get_file_info(posixpath.join(path, name, STATE_FILE)).type == (
            pyarrow.fs.FileType.File
        ):
            relative = posixpath.relpath(posixpath.join(path, name), reader.root)
            return int(report["epoch"]), relative
    return 0, None


def _lost_state(reader: ExperimentReader, name: str) -> LostState:
    return dataclasses.replace(_trial_ends(reader, reader.root), state=name)


def _lost(reader: ExperimentReader, folder: str, name: str, text: str | None) -> str:
    """Why resume cannot go on: the state ``name`` cannot be read (``''``: there is none)."""
    if not name:
        what = (
            f"it holds trial folders but no Ray Tune state ({TUNE_STATE_PREFIX}*.json: the storage "
            "may have filled before Ray Tune first saved it)"
        )
    else:
        try:
            json.loads(text if text is not None else b"\xff")
            why = "not a Ray Tune state"
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            why = type(err).__name__
        what = (
            f"its Ray Tune state {name} cannot be read ({why}) and no good copy of it is left on "
            "this host"
        )
    ends = _trial_ends(reader, folder)
    lost = ", ".join(t.folder for t in ends.lost) if ends.lost else "none"
    if folder == reader.root:
        then = (
            f"`taso-tune resume {reader.path} --rerun-lost` keeps them and trains only the lost "
            "trials again (same configurations and seeds), each from the last checkpoint its "
            "folder holds"
        )
    else:
        then = (
            f"--rerun-lost reruns only the lost trials of the experiment's own run, not those of "
            f"{posixpath.basename(folder)}: run the lost configurations as a new sweep"
        )
    return (
        f"{what}: the unfinished trials are lost ({lost}); the {len(ends.kept)} finished trials "
        f"stay readable by `taso-tune report` and `export`; {then}"
    )
