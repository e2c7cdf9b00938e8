"""Files of an experiment folder on a local disk, an NFS mount or a storage URI (via pyarrow).

Shared by the Ray layer (which writes the space file and the budget-sh bookkeeping) and the results
layer (which reads what the trials reported); imports neither.
"""

from __future__ import annotations

import os
import posixpath

import pyarrow.fs


def resolve(path: str) -> str:
    """A storage URI as given; a local path made absolute (``~`` expanded), as Ray Tune needs it."""
    if "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def filesystem(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow file system of a local path or a URI, and the path inside it."""
    if "://" in path:
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), str(path)


def exists(path: str) -> bool:
    """Whether anything (file or folder) is at ``path``."""
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def read_text(fs: pyarrow.fs.FileSystem, path: str) -> str | None:
    """The text of the file at ``path`` in ``fs``, or ``None`` when there is no such file."""
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as handle:
        return handle.read().decode()


def read_experiment_file(experiment: str, name: str) -> str | None:
    """The text of ``EXPERIMENT/name``, or ``None`` when it is missing."""
    fs, root = filesystem(experiment)
    return read_text(fs, posixpath.join(root.rstrip("/"), name))


def write_experiment_file(experiment: str, name: str, text: str) -> None:
    """Write ``EXPERIMENT/name`` atomically: a temporary file beside it, then a move."""
    fs, root = filesystem(experiment)
    root = root.rstrip("/")
    fs.create_dir(root, recursive=True)
    tmp, final = f"{root}/.{name}.tmp", f"{root}/{name}"
    with fs.open_output_stream(tmp) as handle:
        handle.write(text.encode())
    fs.move(tmp, final)
