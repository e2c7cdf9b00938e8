"""Where a sweep's results go: ``STORAGE/NAME``, a local path, an NFS mount or a cloud URI.

A new sweep's folder is checked before anything starts: the storage must be writable and the
folder must not hold another experiment (resume that one instead).
"""

from __future__ import annotations

import posixpath

from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import check_writable, exists, resolve
from taso_tune.experiment.lock import lock_holder, only_own_lock


def experiment_path(storage: str, name: str) -> str:
    """``STORAGE/NAME`` for local paths and URIs alike (local paths made absolute): where Ray Tune
    writes the run of ``name`` under ``storage_path=resolve(storage)``. ``name`` is one folder
    inside the storage: a name with a path separator, or ``.``/``..``, is refused."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(
            "--name", name, "must be one folder name inside the storage (no '/', not . or ..)"
        )
    return posixpath.join(resolve(storage).rstrip("/"), name)


def new_experiment_path(storage: str, name: str, *, name_given: bool = True) -> str:
    """``STORAGE/NAME`` for a new sweep; refuses, before anything starts, storage that cannot be
    written (see :func:`~taso_tune.core.storage.check_writable`) and an existing folder.

    ``name_given``: the caller chose ``name`` (``--name``); otherwise it is the space's own name,
    and a refusal names the folder and says how to pick another name, not a flag never given."""
    path = experiment_path(storage, name)
    check_writable(storage, "--storage", "folder")
    if exists(path) and not only_own_lock(path):
        field, value = ("--name", name) if name_given else ("experiment", path)
        other = "choose another --name" if name_given else "pass --name NAME to start a new one"
        holder = lock_holder(path)
        if holder is not None:
            raise ConfigError(
                field, value, f"experiment folder {path} is in use by {holder.describe()}; {other}"
            )
        raise ConfigError(
            field,
            value,
            f"experiment folder {path} already exists; resume it with "
            f"`taso-tune resume {path}` or {other}",
        )
    return path
