"""Atomic file writes: a reader never sees a half-written results, config or export file."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import yaml


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
