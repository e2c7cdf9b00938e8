"""The user's own modules on Ray's workers: what a sweep that names ``package.module:callable``
models or loaders ships with Ray's ``runtime_env``.

A module installed in site-packages is expected on every node and is not shipped; one imported from
anywhere else (a project folder, the working directory) is shipped as ``py_modules``: its top-level
package folder, or its file for a single-module ``name.py``. The loaders run in the driver only
(their data travels in Ray's object store), but the model factories run in every trial.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from taso_tune.spaces import SweepSpec
from taso_tune.training.user_code import imported_modules, is_import_spec, module_source

#: Set by Ray in the driver of a submitted job, whose runtime env the job already carries.
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def user_modules(names: Iterable[object]) -> list[str]:
    """The modules a sweep imports for the model and data set names it trains on."""
    return imported_modules(names)


def shipped_sources(names: Iterable[object]) -> list[str]:
    """The folders and files Ray ships for the user modules of ``names`` (installed ones stay)."""
    sources: list[str] = []
    for module in user_modules(names):
        source = module_source(module)
        if source is not None and source not in sources:
            sources.append(source)
    return sources


def runtime_env(names: Iterable[object]) -> dict[str, Any] | None:
    """The runtime env of a sweep's driver: its user modules as ``py_modules``. ``None`` when there
    is nothing to ship, or inside a submitted job (``taso-tune submit`` ships them with the job)."""
    if os.environ.get(JOB_CONFIG_ENV):
        return None
    sources = shipped_sources(names)
    return {"py_modules": sources} if sources else None


def space_callables(spec: SweepSpec) -> list[str]:
    """Every ``package.module:callable`` a space names, in its train section or any block's values
    (read from the space's text: nothing is imported)."""
    values: list[Any] = list(spec.train.values())
    for block in spec.blocks:
        for value in block.values():
            values.extend(value.options)
    return [v for v in dict.fromkeys(v for v in values if is_import_spec(v))]


def job_py_modules(spec: SweepSpec, working_dir: str) -> list[str]:
    """What a submitted job ships besides its working directory: the space's user modules that live
    outside it (those inside travel with the working directory)."""
    inside = os.path.abspath(working_dir) + os.sep
    return [
        s for s in shipped_sources(space_callables(spec)) if not (s + os.sep).startswith(inside)
    ]
