"""Which experiment folders ``taso-tune resume`` trusts: resuming runs code from the folder.

Ray Tune restores a run by unpickling what it saved there (``tuner.pkl``, the searcher's state, the
trials inside ``experiment_state-*.json``), and unpickling a crafted file runs any command. So a
local folder is resumed only when you alone could have written those files: the folder, every file
at its top and at the top of each budget-sh rung folder and of the rerun of lost trials belong to
you and are not writable by group or others, and none is a symbolic link. The same rule picks the
copy of a damaged Tune state that resume takes back from Ray's session folder
(:func:`untrusted`). The trials' own checkpoints are read with ``torch.load(weights_only=True)``,
which on the torch taso-tune requires (2.6 or later: earlier ones could be made to run code
through it, CVE-2025-32434) builds tensors and plain values only; ``resume --rerun-lost`` loads only
a ``checkpoint_<n>`` folder inside the lost trial's own folder, and prints which. A bucket has no
owners to check: resume only from a bucket that nobody else can write.
"""

from __future__ import annotations

import os
import pwd
import stat

from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import is_uri, resolve
from taso_tune.experiment.layout import RERUN_FOLDER, RUNG_PREFIX

WHY = (
    "resuming unpickles the folder's Ray Tune state (tuner.pkl and the experiment state), which "
    "can run code, so taso-tune resumes only what you alone can write"
)


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _problem(path: str, info: os.stat_result) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symbolic link"
    if info.st_uid != os.geteuid():
        return f"{path} belongs to {_owner(info.st_uid)}, not to you ({_owner(os.geteuid())})"
    writable = [
        who
        for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH))
        if info.st_mode & bit
    ]
    if writable:
        return (
            f"{path} is writable by {' and '.join(writable)} (mode {stat.S_IMODE(info.st_mode):o})"
        )
    return None


def untrusted(path: str, top: str) -> str | None:
    """Why the file ``path`` may not be yours alone (see :func:`_problem`), checking it and each
    folder above it up to ``top`` included (someone who can write a folder can replace what it
    holds); ``None`` when nothing is wrong. A ``path`` outside ``top`` is refused too."""
    top = os.path.abspath(top)
    current = os.path.abspath(path)
    if os.path.commonpath([top, current]) != top:
        return f"{path} is not inside {top}"
    while True:
        try:
            problem = _problem(current, os.lstat(current))
        except OSError as err:
            return f"{current}: {err.strerror}"
        if problem or current == top:
            return problem
        current = os.path.dirname(current)


def check_trusted_folder(experiment: str) -> None:
    """Refuse to resume a local experiment folder someone else could have written (see the module
    docstring); a URI passes (nothing to check).

    Raises:
        ConfigError: on ``EXPERIMENT``, naming the path and why; fix it with ``chmod go-w`` or by
            copying the results you trust into a folder of your own.
    """
    if is_uri(experiment):
        return
    root = resolve(experiment)
    folders = [root]
    with os.scandir(root) as entries:
        folders += sorted(
            e.path
            for e in entries
            if (e.name.startswith(RUNG_PREFIX) or e.name == RERUN_FOLDER)
            and e.is_dir(follow_symlinks=False)
        )
    for folder in folders:
        paths = [folder]
        with os.scandir(folder) as entries:
            paths += sorted(e.path for e in entries if not e.is_dir(follow_symlinks=False))
        for path in paths:
            # the folder named on the command line may be a link to the real one: its target counts
            problem = _problem(path, os.stat(path) if path == root else os.lstat(path))
            if problem:
                raise ConfigError(
                    "EXPERIMENT", experiment, f"{problem}: {WHY} (`chmod go-w` what you trust)"
                )
