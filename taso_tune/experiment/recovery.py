"""Recovery of an experiment folder whose Ray Tune state cannot be read, before a resume.

Ray Tune saves its experiment state (``experiment_state-<session>.json``: every trial, its status
and its checkpoints) in Ray's session folder on the driver's host, then copies it into the
experiment folder. taso-tune gives Tune atomic writes into local storage, so that copy is always a
whole one; a folder written otherwise (by an older taso-tune, or copied with ``cp``/``rsync`` onto a
disk that filled) can hold a truncated one, from which Tune would start every trial again.

:func:`recover_state` looks, for each Tune run of the experiment (the top folder, and each budget-sh
rung), whether its newest state can be read. Where it cannot, the last good copy is the one the
driver kept in Ray's session folder on this host: the newest readable copy of the same file is
written back (atomically; the damaged one is kept beside it as ``damaged-<name>``) and resume goes on.
Where no such copy is left, resume stops with one line that says which trials are lost (the
unfinished ones: Tune no longer knows their checkpoints) and which finished trials stay readable by
``report`` and ``export``; it never trains every trial again.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath
import tempfile

import pyarrow.fs

from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import (
    filesystem,
    is_uri,
    read_text,
    result_records,
    write_experiment_file,
)
from taso_tune.experiment.state import record_finished

#: Where Ray keeps its session folders: ``$RAY_TMPDIR/ray``, else the system's temporary folder.
RAY_TMPDIR_ENV = "RAY_TMPDIR"
_STATE_PREFIX = "experiment_state-"


def _newest_state(fs: pyarrow.fs.FileSystem, folder: str) -> str | None:
    entries = fs.get_file_info(pyarrow.fs.FileSelector(folder))
    states = sorted(
        e.path
        for e in entries
        if posixpath.basename(e.path).startswith(_STATE_PREFIX) and e.path.endswith(".json")
    )
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
    """Copies of the Tune state file ``name`` in Ray's session folders on this host, newest first."""
    root = os.path.join(os.environ.get(RAY_TMPDIR_ENV) or tempfile.gettempdir(), "ray")
    pattern = os.path.join(root, "session_*", "artifacts", "*", "*", "driver_artifacts", name)
    return sorted(glob.glob(pattern), key=os.path.getmtime, reverse=True)


def _trial_ends(fs: pyarrow.fs.FileSystem, folder: str) -> tuple[list[str], list[str]]:
    """The trial folders of the Tune run in ``folder``: (finished, unfinished), by their records."""
    finished, unfinished = [], []
    for info in fs.get_file_info(pyarrow.fs.FileSelector(folder)):
        if info.type != pyarrow.fs.FileType.Directory or posixpath.basename(info.path).startswith(
            "rung-"
        ):
            continue
        path = posixpath.join(info.path, "result.json")
        text = read_text(fs, path)
        if text is None:
            continue
        try:
            records = result_records(text, path)
        except ConfigError:
            records = []
        name = posixpath.basename(info.path)
        (finished if records and record_finished(records[-1]) else unfinished).append(name)
    return sorted(finished), sorted(unfinished)


def recover_state(experiment: str) -> list[str]:
    """Make every Tune run of ``experiment`` resumable from its last good state; return a line for
    each state written back (empty when every state could be read).

    Raises:
        ConfigError: on ``experiment``, when a state cannot be read and no good copy is left: the
            line names the state, the trials lost and the finished trials kept.
    """
    fs, root = filesystem(experiment)
    root = root.rstrip("/")
    if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
        return []
    rungs = [
        e.path
        for e in fs.get_file_info(pyarrow.fs.FileSelector(root))
        if e.type == pyarrow.fs.FileType.Directory
        and posixpath.basename(e.path).startswith("rung-")
    ]
    notes = []
    for folder in [root, *sorted(rungs)]:
        state = _newest_state(fs, folder)
        if state is None:
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
            raise ConfigError("experiment", experiment, _lost(fs, folder, name, text))
        # kept for a look, under a name neither Tune nor taso-tune takes for a state
        fs.move(state, posixpath.join(folder, f"damaged-{name}"))
        write_experiment_file(folder, name, good[1])
        notes.append(f"{state}: damaged; restored the driver's last good copy from {good[0]}")
    return notes


def _good_copy(name: str) -> tuple[str, str] | None:
    for path in session_copies(name):
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError):
            continue
        if _readable(text):
            return path, text
    return None


def _lost(fs: pyarrow.fs.FileSystem, folder: str, name: str, text: str | None) -> str:
    try:
        json.loads(text if text is not None else b"\xff")
        why = "not a Ray Tune state"
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        why = type(err).__name__
    finished, unfinished = _trial_ends(fs, folder)
    lost = ", ".join(unfinished) if unfinished else "none"
    return (
        f"its Ray Tune state {name} cannot be read ({why}) and no good copy of it is left on this "
        f"host: the unfinished trials are lost ({lost}); the {len(finished)} finished trials stay "
        "readable by `taso-tune report` and `export`; run the lost configurations as a new sweep "
        "(resuming would train every trial again)"
    )
