"""Where taso-tune writes: atomic local files, and the files of an experiment folder on a local
disk, an NFS mount or a storage URI (via pyarrow).

A reader never sees a half-written results, config or export file. Shared by the Ray layer (which
writes the space file and the budget-sh bookkeeping) and the results layer (which reads what the
trials reported); imports neither.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from typing import Any

import pyarrow.fs
import yaml

from taso_tune.errors import ConfigError

#: Storage that every node of a cluster sees: bucket URI schemes, and mount points of shared file systems.
SHARED_URI_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hdfs")
SHARED_PATH_PREFIXES = ("/mnt/", "/nfs/")
#: Set to 1 to vouch that a local-looking path is the same shared mount on every node.
SHARED_STORAGE_ENV = "TASO_TUNE_SHARED_STORAGE"
#: The results root used when ``--storage`` is not given (set on cluster heads).
STORAGE_ENV = "TASO_TUNE_STORAGE"


def is_uri(path: str) -> bool:
    """Whether ``path`` is a storage URI (``s3://bucket/x``) rather than a local path."""
    return "://" in str(path)


def resolve(path: str) -> str:
    """A storage URI as given; a local path made absolute (``~`` expanded), as Ray Tune needs it."""
    if is_uri(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def filesystem(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow file system of a local path or a URI, and the path inside it."""
    if is_uri(path):
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



def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600 files; results are for everyone who may read them
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_yaml_atomic(path: str, data: Any) -> None:
    """Dump ``data`` as YAML (keys in the order given) atomically."""
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def require_shared_storage(storage: str | None, num_nodes: int) -> None:
    """Refuse storage that the nodes of a ``num_nodes``-node cluster do not all see.

    One node: anything goes (``None`` means the default local folder). More nodes: each trial
    writes its results where it runs, so ``storage`` must be a bucket URI (``s3://``, ``gs://``,
    ``gcs://``, ``abfs://``, ``abfss://``, ``az://``, ``hdfs://``) or an absolute path on a mount
    every node shares: under ``/mnt/`` or ``/nfs/``, or anywhere when ``TASO_TUNE_SHARED_STORAGE=1``
    is set (you vouch that the path is the same shared mount on every node).

    Raises:
        ConfigError: on field ``storage``, saying why the location is refused.
    """
    if num_nodes <= 1:
        return
    where = f"a sweep over {num_nodes} nodes"
    if not storage:
        raise ConfigError(
            "storage", storage,
            f"{where} needs --storage on shared storage (a bucket URI such as s3://BUCKET/PATH, or "
            f"a path under {' or '.join(SHARED_PATH_PREFIXES)} mounted on every node): without it "
            "each node keeps its trials' results on its own disk, where the driver cannot "
            "checkpoint, resume or report them",
        )  # fmt: skip
    scheme, sep, _ = storage.partition("://")
    if sep and scheme != "file":
        if scheme.lower() in SHARED_URI_SCHEMES:
            return
        raise ConfigError(
            "storage", storage, f"{where} needs a bucket URI of a known scheme",
            choices=[f"{s}://" for s in SHARED_URI_SCHEMES],
        )  # fmt: skip
    path = storage[len("file://") :] if sep else storage
    if os.environ.get(SHARED_STORAGE_ENV) == "1":
        return
    normal = os.path.normpath(path)
    if os.path.isabs(normal) and any((normal + "/").startswith(p) for p in SHARED_PATH_PREFIXES):
        return
    raise ConfigError(
        "storage", storage,
        f"{where} cannot use a node-local path: every node would write its trials to its own disk, "
        "so results would be scattered and the sweep could not be resumed or reported; use a "
        f"bucket URI (s3://, gs://, ...) or a shared mount under {' or '.join(SHARED_PATH_PREFIXES)}, "
        f"or set {SHARED_STORAGE_ENV}=1 if this path is the same shared mount on every node",
    )  # fmt: skip
