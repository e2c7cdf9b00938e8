"""One driver per experiment: the lock that ``sweep`` and ``resume`` hold on an experiment folder.

Two drivers on one experiment break it for good (the second one's checkpoints are rotated away by
the first, finished trials are marked errored), so ``EXPERIMENT/taso_tune.lock`` says who drives it:
host, pid, start time and command, as JSON.

- **Local disks and NFS.** The lock file is created with ``O_CREAT | O_EXCL``, which is atomic on a
  local file system and on NFSv3 and later (the server does the exclusive create), so of two drivers
  exactly one gets it. A lock whose holder died (SIGKILL, a crash) stays behind; on the same host a
  holder pid that no longer runs marks it stale and the next driver takes it over. A holder on
  another host cannot be told from a live one: the error names it and the file to delete.
- **Buckets** (``s3://``, ``gs://``, ...). pyarrow gives no create-if-absent, so the lock object is
  written when absent and read back: a second driver started after the first is refused, two started
  within the same second may both pass. Run one driver per experiment in a bucket.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import posixpath
import socket
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow.fs

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import LOCK_FILE
from taso_tune.core.storage import filesystem, first_line, is_uri, read_text, resolve


@dataclass(frozen=True)
class Holder:
    """Who holds an experiment's lock."""

    host: str
    pid: int
    started: str
    command: str
    token: str

    def describe(self) -> str:
        return f"`taso-tune {self.command}` (pid {self.pid} on {self.host}, since {self.started})"

    @classmethod
    def parse(cls, text: str | None) -> Holder | None:
        """The holder written in a lock file; ``None`` for a file being written or not ours."""
        try:
            data = json.loads(text or "")
            return cls(
                str(data["host"]),
                int(data["pid"]),
                str(data["started"]),
                str(data["command"]),
                str(data["token"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def is_stale(holder: Holder | None) -> bool:
    """A lock whose holder ran on this host under a pid that no longer runs."""
    return holder is not None and holder.host == socket.gethostname() and not _pid_alive(holder.pid)


class ExperimentLock:
    """The lock of the experiment folder ``experiment`` (made if missing), held by ``command``.

    ``with ExperimentLock(path, "resume"):`` holds it for the block. Acquiring raises
    :class:`ConfigError` on field ``experiment`` naming the holder when someone else holds it.
    """

    def __init__(self, experiment: str, command: str) -> None:
        self.experiment = resolve(experiment)
        self.path = posixpath.join(self.experiment.rstrip("/"), LOCK_FILE)
        self.me = Holder(
            socket.gethostname(),
            os.getpid(),
            _dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
            command,
            uuid.uuid4().hex,
        )
        self.held = False
        #: Folders the lock made (the experiment's, and storage folders above it that were missing).
        self.created: list[str] = []

    def __enter__(self) -> ExperimentLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _refuse(self, holder: Holder | None) -> ConfigError:
        who = (
            holder.describe()
            if holder
            else "another taso-tune driver (its lock file is being written or unreadable)"
        )
        return ConfigError(
            "experiment",
            self.experiment,
            f"is in use by {who}; wait for it to end, or, if that process is gone "
            f"(its machine was lost), delete {self.path} and try again",
        )

    def acquire(self) -> None:
        try:
            if is_uri(self.experiment):
                self._acquire_uri()
            else:
                self._acquire_local()
        except OSError as err:
            raise ConfigError(
                "experiment",
                self.experiment,
                f"cannot write its lock file {self.path}: {first_line(err)}",
            ) from None
        self.held = True

    def _acquire_local(self) -> None:
        missing, folder = [], self.experiment
        while not os.path.isdir(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        os.makedirs(self.experiment, exist_ok=True)
        self.created = missing
        text = json.dumps(asdict(self.me))
        for _ in range(
            3
        ):  # a stale lock taken over, then a race lost: give up with the holder's name
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                seen = _read_local(self.path)
                if seen is None:
                    continue  # released between our create and our read
                if not is_stale(Holder.parse(seen)):
                    raise self._refuse(Holder.parse(seen)) from None
                self._break_stale(seen)
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
            except BaseException:
                # our own lock file, empty or cut short (a full disk): left behind, it would refuse
                # every later driver as "being written" until deleted by hand
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                raise
            return
        raise self._refuse(Holder.parse(_read_local(self.path)))

    def _break_stale(self, seen: str) -> None:
        """Remove the stale lock whose text is ``seen``, and only that one: it is renamed aside
        first, so a driver that replaced it meanwhile keeps its lock (it is moved back)."""
        aside = f"{self.path}.stale-{self.me.token}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another driver broke it first
        if _read_local(aside) == seen:
            os.unlink(aside)
            return
        try:
            os.link(
                aside, self.path
            )  # a live lock moved by mistake goes back, unless yet another came
        except FileExistsError:
            pass
        finally:
            os.unlink(aside)

    def _acquire_uri(self) -> None:
        fs, root = filesystem(self.experiment)
        path = posixpath.join(root.rstrip("/"), LOCK_FILE)
        fs.create_dir(root.rstrip("/"), recursive=True)
        seen = read_text(fs, path)
        if seen is not None:
            if not is_stale(Holder.parse(seen)):
                raise self._refuse(Holder.parse(seen))
            fs.delete_file(path)
        with fs.open_output_stream(path) as handle:
            handle.write(json.dumps(asdict(self.me)).encode())
        back = Holder.parse(read_text(fs, path))
        if back is None or back.token != self.me.token:
            raise self._refuse(back)

    def remove_created(self) -> None:
        """Remove the folders :meth:`acquire` made that are empty now (a sweep that started nothing
        leaves no folder behind); one that holds anything stays."""
        for folder in self.created:  # innermost first
            try:
                if os.path.isdir(folder):
                    os.rmdir(folder)
            except OSError:
                break
        self.created = []

    def release(self) -> None:
        """Remove the lock if it is still this driver's (never another's)."""
        if not self.held:
            return
        self.held = False
        if is_uri(self.experiment):
            fs, root = filesystem(self.experiment)
            path = posixpath.join(root.rstrip("/"), LOCK_FILE)
            holder = Holder.parse(read_text(fs, path))
            if holder is not None and holder.token == self.me.token:
                fs.delete_file(path)
            return
        holder = Holder.parse(_read_local(self.path))
        if holder is not None and holder.token == self.me.token:
            os.unlink(self.path)


def _read_local(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def only_own_lock(experiment: str) -> bool:
    """Whether the folder ``experiment`` holds nothing but a lock this process took (a new sweep
    takes its lock, which makes the folder, before the steps that refuse an existing one)."""
    folder = resolve(experiment)
    if is_uri(folder):
        fs, root = filesystem(folder)
        entries = [
            posixpath.basename(e.path)
            for e in fs.get_file_info(pyarrow.fs.FileSelector(root.rstrip("/")))
        ]
        text = read_text(fs, posixpath.join(root.rstrip("/"), LOCK_FILE))
    else:
        entries = os.listdir(folder)
        text = _read_local(os.path.join(folder, LOCK_FILE))
    holder = Holder.parse(text)
    return (
        entries == [LOCK_FILE]
        and holder is not None
        and (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
    )


def lock_holder(experiment: str) -> Holder | None:
    """Who holds the lock of ``experiment`` now, if a live-looking holder does (``None``: no lock,
    an unreadable one, or a stale one)."""
    fs, root = filesystem(resolve(experiment))
    holder = Holder.parse(read_text(fs, posixpath.join(root.rstrip("/"), LOCK_FILE)))
    return None if holder is None or is_stale(holder) else holder
