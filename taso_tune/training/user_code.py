"""Code the user names by import string: ``package.module:callable`` model factories and data loaders.

taso-tune imports a module only when the user names it: a ``model:`` or ``dataset:`` field of the
space they pass, ``--model``/``--dataset`` on the command line, or a callable handed to the Python
API. A saved space that ``resume`` reads names its modules, and ``resume`` says which it imports
before it does (:func:`imported_modules`).

Every failure is a :class:`~taso_tune.core.errors.ConfigError` naming the field and the import
string, with the error's own line: a module that does not import, a missing attribute, something
that is not callable. A ``sys.exit()`` in user code is such a failure too, never the exit of
taso-tune itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from taso_tune.core.errors import ConfigError

#: ``package.module:callable`` (the callable may be an attribute path, ``module:Class.make``).
IMPORT_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_import_spec(name: object) -> bool:
    """Whether ``name`` is a ``package.module:callable`` string."""
    return isinstance(name, str) and bool(IMPORT_SPEC.match(name))


def error_line(err: BaseException) -> str:
    """The error's own last line, as Python prints it (``ModuleNotFoundError: No module named 'x'``),
    with the file and line of a syntax error."""
    return traceback.format_exception_only(type(err), err)[-1].strip()


def look_in_working_directory() -> None:
    """Put the working directory on ``sys.path``, as ``python -m`` and ``python -c`` do, so a
    module beside the user's space imports: the ``taso-tune`` command, a console script, starts
    with its own ``bin`` folder there instead. Last, so it never shadows an installed package."""
    here = os.getcwd()
    if not any(os.path.abspath(entry or os.curdir) == here for entry in sys.path):
        sys.path.append(here)


def import_callable(spec: str, field: str) -> Callable[..., Any]:
    """The callable ``spec`` names, imported; fails naming ``field`` and ``spec``."""
    if not is_import_spec(spec):
        raise ConfigError(field, spec, "must be package.module:callable")
    module_name, _, attribute = spec.partition(":")
    look_in_working_directory()
    try:
        obj: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as err:  # user code's own error, even a sys.exit() at import
        raise ConfigError(
            field, spec, f"module {module_name!r} does not import: {error_line(err)}"
        ) from err
    # the file says when a module of the same name (a standard library one) was imported instead
    where = getattr(obj, "__file__", None) or "built in"
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ConfigError(
                field,
                spec,
                f"module {module_name!r} has no attribute {attribute!r} (imported from {where})",
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(field, spec, f"{attribute!r} is a {type(obj).__name__}, not a callable")
    return obj


def spec_of(function: Callable[..., Any], field: str) -> str:
    """The import string of ``function`` (a callable handed to the Python API).

    Ray's workers import it by this name, so it must live in a module, not in ``__main__`` (a
    notebook or a script's own functions).
    """
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", "")
    if not module or module == "__main__" or "<locals>" in qualname:
        raise ConfigError(
            field,
            getattr(function, "__name__", function),
            "must be defined at the top of an importable module (a .py file), not in __main__ "
            "or inside a function, so Ray's workers can import it by name",
        )
    return f"{module}:{qualname}"


def imported_modules(names: Iterable[object]) -> list[str]:
    """The modules of the import strings among ``names``, in order, each once."""
    seen: list[str] = []
    for name in names:
        if is_import_spec(name):
            module = str(name).partition(":")[0]
            if module not in seen:
                seen.append(module)
    return seen


def module_source(module_name: str) -> str | None:
    """Where the top-level package of ``module_name`` lives on disk, when Ray must ship it to the
    workers: its folder (a package) or file (a single module). ``None`` for an installed package
    (site-packages, which every node is expected to have), a module of the standard library, or
    one that cannot be found."""
    top = module_name.split(".")[0]
    look_in_working_directory()
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin in ("built-in", "frozen"):
        return None
    locations = list(spec.submodule_search_locations or [])
    if spec.origin in (None, "namespace"):
        # a namespace package (a folder without __init__.py) in one folder ships as that folder
        if len(locations) != 1:
            return None
        path = locations[0]
    elif locations:
        path = os.path.dirname(spec.origin)
    else:
        path = spec.origin  # a single-file module
    installed = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    installed += [sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")]
    if any(os.path.abspath(path).startswith(os.path.abspath(p) + os.sep) for p in installed):
        return None
    return os.path.abspath(path)
