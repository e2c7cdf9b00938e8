"""Where taso-tune writes: atomic local files, and the files of an experiment folder on a local
disk, an NFS mount or a storage URI (via pyarrow).

A reader never sees a half-written results, config or export file. Shared by the Ray layer (which
writes the space file and the budget-sh bookkeeping) and the results layer (which reads what the
trials reported); imports neither.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import posixpath
import tempfile
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import pyarrow.fs
import yaml

from taso_tune.core.errors import ConfigError, DamagedResults
from taso_tune.core.records import TrialReport
from taso_tune.core.report_checks import check_trial_report

#: Storage that every node of a cluster sees: bucket URI schemes, and mount points of shared file systems.
SHARED_URI_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hdfs")
SHARED_PATH_PREFIXES = ("/mnt/", "/nfs/")
#: Set to 1 to vouch that a local-looking path is the same shared mount on every node.
SHARED_STORAGE_ENV = "TASO_TUNE_SHARED_STORAGE"
#: The results root used when ``--storage`` is not given (set on cluster heads).
STORAGE_ENV = "TASO_TUNE_STORAGE"
#: Seconds a storage URI's file system gets to answer before the sweep gives up on it.
STORAGE_TIMEOUT_ENV = "TASO_TUNE_STORAGE_TIMEOUT"
DEFAULT_STORAGE_TIMEOUT_S = 20.0
#: Every temporary file written before a move into place starts so: hidden, and named after nothing.
TEMP_PREFIX = ".tmp-"

T = TypeVar("T")


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


def temporary_name(name: str) -> str:
    """The name of the temporary file written before ``name`` is moved into place: hidden, and
    holding nothing of ``name`` that a reader matches files by (TensorBoard reads any file whose
    name holds ``tfevents``, and would read one half written), yet the same for the same ``name``,
    so a write cut short leaves one file that the next write replaces."""
    return f"{TEMP_PREFIX}{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def write_experiment_file(experiment: str, name: str, text: str | bytes) -> None:
    """Write ``EXPERIMENT/name`` atomically: a temporary file beside it (:func:`temporary_name`),
    then a move (``text``: written as UTF-8; ``bytes``: as they are)."""
    fs, root = filesystem(experiment)
    root = root.rstrip("/")
    fs.create_dir(root, recursive=True)
    tmp, final = f"{root}/{temporary_name(name)}", f"{root}/{name}"
    with fs.open_output_stream(tmp) as handle:
        handle.write(text if isinstance(text, bytes) else text.encode())
    fs.move(tmp, final)


def delete_experiment_file(experiment: str, name: str) -> None:
    """Remove ``EXPERIMENT/name`` if it is there."""
    fs, root = filesystem(experiment)
    path = posixpath.join(root.rstrip("/"), name)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.File:
        fs.delete_file(path)


def remove_if_only(experiment: str, names: tuple[str, ...]) -> bool:
    """Delete the folder ``experiment`` when it holds nothing but files named in ``names`` (what a
    sweep writes before its first trial); ``False``, touching nothing, when it holds anything else."""
    fs, root = filesystem(experiment)
    root = root.rstrip("/")
    if fs.get_file_info(root).type != pyarrow.fs.FileType.Directory:
        return False
    entries = fs.get_file_info(pyarrow.fs.FileSelector(root))
    if any(
        posixpath.basename(e.path) not in names or e.type != pyarrow.fs.FileType.File
        for e in entries
    ):
        return False
    fs.delete_dir(root)
    return True


def result_records(text: str, path: str, written_by: float | None = None) -> list[TrialReport]:
    """The trial reports of a trial's ``result.json`` (its ``text``, read from ``path``), each epoch
    once, in order, each checked against :class:`~taso_tune.core.records.TrialReport`
    (:func:`~taso_tune.core.report_checks.check_trial_report`). An epoch reported again (a resumed
    trial repeats those after its checkpoint) counts with its last report.

    ``written_by`` (seconds since the epoch): the file as it stood then; reports Ray Tune stamped
    later (its ``timestamp``, in whole seconds) are left out before the repeats are resolved, so a
    stopped run's last reports stay what it left even after a resume repeated their epochs.

    A last line cut short (a driver killed while writing it) is left out; a line before it that is
    not JSON, or a record of the wrong shape anywhere, is a :class:`DamagedResults` naming the file,
    the line and the field."""
    by_epoch: dict[int, TrialReport] = {}
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    for index, (number, line) in enumerate(numbered, 1):
        try:
            rec = json.loads(line)
        except ValueError:
            if index == len(numbered):
                break
            raise DamagedResults(
                f"line {number}",
                line[:40],
                "is not JSON; the trial's results are damaged",
                file=path,
            ) from None
        if written_by is not None and _stamped_at(rec) > written_by:
            continue  # not written yet then: whatever it holds
        report = check_trial_report(rec, path, number)
        by_epoch[report["epoch"]] = report
    return [by_epoch[k] for k in sorted(by_epoch)]


def _stamped_at(record: Any) -> float:
    """Ray Tune's ``timestamp`` of a result line (0 where it has none)."""
    value = record.get("timestamp") if isinstance(record, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, short enough for a one-line error."""
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def call_with_timeout(fn: Callable[[], T], seconds: float) -> T:
    """``fn()`` in a daemon thread; ``TimeoutError`` when it has not returned after ``seconds``
    (a bucket that does not answer retries for minutes: the caller reports it instead of hanging)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True, name="taso-tune-storage-probe")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def storage_timeout() -> float:
    """:data:`STORAGE_TIMEOUT_ENV` in seconds, else :data:`DEFAULT_STORAGE_TIMEOUT_S`."""
    raw = os.environ.get(STORAGE_TIMEOUT_ENV)
    try:
        value = float(raw) if raw else DEFAULT_STORAGE_TIMEOUT_S
    except ValueError:
        raise ConfigError(STORAGE_TIMEOUT_ENV, raw, "must be a number of seconds") from None
    if not 0 < value < float("inf"):
        raise ConfigError(STORAGE_TIMEOUT_ENV, raw, "must be a number of seconds > 0")
    return value


def check_writable(path: str, field: str, kind: Literal["folder", "file"]) -> None:
    """Refuse, before anything starts, a place where taso-tune could not write a ``kind``.

    Local paths: a file where a folder is wanted (or the reverse), a path under a file, and a folder
    that cannot be written (found by making and removing a temporary entry in the nearest existing
    folder: permission bits say nothing for root, ACLs or NFS root squashing). URIs: a file system
    that cannot be reached within :func:`storage_timeout` seconds, or a file where a folder is
    wanted; whether a bucket takes writes is known only when the experiment's lock is written.

    Raises:
        ConfigError: on ``field``, naming the path and what is wrong with it.
    """
    if is_uri(path):
        _check_uri(path, field, kind)
        return
    target = resolve(path)
    if os.path.isdir(target) and kind == "file":
        raise ConfigError(field, path, "is a folder, not a file")
    if os.path.lexists(target) and not os.path.isdir(target) and kind == "folder":
        raise ConfigError(field, path, "is a file, not a folder")
    nearest = target if kind == "folder" and os.path.isdir(target) else os.path.dirname(target)
    while not os.path.lexists(nearest):
        nearest = os.path.dirname(nearest)
    if not os.path.isdir(nearest):
        raise ConfigError(field, path, f"is under {nearest}, which is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".taso-tune-probe-", dir=nearest))
    except OSError as err:
        raise ConfigError(
            field, path, f"cannot write in {nearest} ({err.strerror or first_line(err)})"
        ) from None


def _check_uri(uri: str, field: str, kind: str) -> None:
    seconds = storage_timeout()

    def probe() -> pyarrow.fs.FileType:
        fs, inner = filesystem(uri)
        return fs.get_file_info(inner).type

    try:
        found = call_with_timeout(probe, seconds)
    except TimeoutError:
        raise ConfigError(
            field,
            uri,
            f"storage did not answer within {seconds:g} s (unreachable, or "
            f"no credentials; set {STORAGE_TIMEOUT_ENV} to wait longer)",
        ) from None
    except (
        Exception
    ) as err:  # pyarrow raises OSError and ArrowInvalid subclasses, and its own types
        raise ConfigError(field, uri, f"cannot reach this storage: {first_line(err)}") from None
    if kind == "folder" and found == pyarrow.fs.FileType.File:
        raise ConfigError(field, uri, "is a file, not a folder")
    if kind == "file" and found == pyarrow.fs.FileType.Directory:
        raise ConfigError(field, uri, "is a folder, not a file")


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(
        fd, 0o666 & ~umask
    )  # mkstemp makes 0600 files; results are for everyone who may read them
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
            "storage",
            storage,
            f"{where} needs --storage on shared storage (a bucket URI such as s3://BUCKET/PATH, or "
            f"a path under {' or '.join(SHARED_PATH_PREFIXES)} mounted on every node): without it "
            "each node keeps its trials' results on its own disk, where the driver cannot "
            "checkpoint, resume or report them",
        )
    scheme, sep, _ = storage.partition("://")
    if sep and scheme != "file":
        if scheme.lower() in SHARED_URI_SCHEMES:
            return
        raise ConfigError(
            "storage",
            storage,
            f"{where} needs a bucket URI of a known scheme",
            choices=[f"{s}://" for s in SHARED_URI_SCHEMES],
        )
    path = storage[len("file://") :] if sep else storage
    if os.environ.get(SHARED_STORAGE_ENV) == "1":
        return
    normal = os.path.normpath(path)
    if os.path.isabs(normal) and any((normal + "/").startswith(p) for p in SHARED_PATH_PREFIXES):
        return
    raise ConfigError(
        "storage",
        storage,
        f"{where} cannot use a node-local path: every node would write its trials to its own disk, "
        "so results would be scattered and the sweep could not be resumed or reported; use a "
        f"bucket URI (s3://, gs://, ...) or a shared mount under {' or '.join(SHARED_PATH_PREFIXES)}, "
        f"or set {SHARED_STORAGE_ENV}=1 if this path is the same shared mount on every node",
    )


#: The exit status of a sweep stopped by a storage that took no more writes (``EX_IOERR``).
STORAGE_FULL_EXIT = 74
#: errno values of a storage that can take no more writes: full, over quota, or read-only.
STORAGE_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_STORAGE_FULL_TEXT = ("no space left on device", "disk quota exceeded", "read-only file system")


def storage_full(err: BaseException | None) -> OSError | None:
    """The disk-full (``ENOSPC``), over-quota (``EDQUOT``) or read-only (``EROFS``) error in ``err``
    or its causes, else ``None``. pyarrow raises a plain ``OSError`` whose errno it may leave unset,
    naming the cause in its text, and Ray wraps a trial's error in its own types: both are looked
    through."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and (
            err.errno in STORAGE_FULL_ERRNOS
            or any(text in str(err).lower() for text in _STORAGE_FULL_TEXT)
        ):
            return err
        err = err.__cause__ or err.__context__ or getattr(err, "cause", None)
    return None


def free_bytes(path: str) -> int | None:
    """Bytes free to this user on the local file system holding ``path`` (its nearest existing
    folder); ``None`` for a URI or when the file system does not say."""
    if is_uri(path):
        return None
    folder = resolve(path)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        info = os.statvfs(folder)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def format_bytes(count: float) -> str:
    """``count`` bytes as a short figure: ``512 B``, ``3.1 MB``, ``12.0 GB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


class _ReplaceOnClose(io.RawIOBase):
    """A file written beside its final path and moved there on a clean close: until then the final
    path keeps its previous content whole; a failed write or a close after one leaves it untouched."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._final = path
        folder = os.path.dirname(path) or "."
        # not named after the file: TensorBoard would read a half-written ``*tfevents*`` one
        fd, self._tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        self._file = os.fdopen(fd, "wb")
        self._failed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except BaseException:
            # give the space back at once: the caller may never close a stream that failed
            self._failed = True
            self._discard()
            raise

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._failed:
                raise OSError(f"not written: {self._final}")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._final)
        except BaseException:
            self._discard()
            if not self._failed:
                raise
        finally:
            super().close()


class AtomicLocalFiles(pyarrow.fs.FileSystemHandler):
    """A local file system whose every written file appears whole or not at all (pyarrow
    ``PyFileSystem`` handler, see :func:`tune_filesystem`).

    Ray Tune copies its experiment state, each trial's ``result.json`` and every checkpoint into the
    storage by opening the destination and writing into it: a disk that fills mid-copy leaves the
    previous copy truncated (an unreadable experiment state, a ``result.json`` of 0 bytes). Here each
    file is written beside its destination and moved over it once complete, so the last good copy
    stays until a new one is whole.
    """

    def __init__(self) -> None:
        self._fs = pyarrow.fs.LocalFileSystem()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AtomicLocalFiles)

    def __hash__(self) -> int:
        return hash(AtomicLocalFiles)

    def __reduce__(self) -> tuple:
        return (AtomicLocalFiles, ())

    def get_type_name(self) -> str:
        return "taso-tune-atomic-local"

    def normalize_path(self, path: str) -> str:
        return self._fs.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pyarrow.fs.FileInfo]:
        return self._fs.get_file_info(paths)

    def get_file_info_selector(self, selector: pyarrow.fs.FileSelector) -> list:
        return self._fs.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self._fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self._fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("taso-tune never deletes the whole root of a file system")

    def delete_file(self, path: str) -> None:
        self._fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._fs.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        with self._fs.open_input_stream(src) as source, self.open_output_stream(dest, {}) as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)

    def open_input_stream(self, path: str) -> Any:
        return self._fs.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        return self._fs.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        return pyarrow.PythonFile(_ReplaceOnClose(path), mode="w")

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self._fs.open_append_stream(path)


def tune_filesystem(storage: str) -> pyarrow.fs.FileSystem | None:
    """The file system Ray Tune gets for ``storage``: for a local path (or NFS mount) one whose
    writes are atomic (:class:`AtomicLocalFiles`); ``None`` for a URI, whose objects a bucket
    stores whole or not at all."""
    return None if is_uri(storage) else pyarrow.fs.PyFileSystem(AtomicLocalFiles())
