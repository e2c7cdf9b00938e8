"""One error type for bad user input, so every layer reports it the same way.

The CLI turns a :class:`ConfigError` into one line on stderr and exit status 2; library callers get
an ordinary ``ValueError`` subclass they can catch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """Bad user input: names the field, the value and (when known) the file and the valid choices."""

    def __init__(
        self,
        field: str,
        value: Any,
        problem: str,
        *,
        file: str | None = None,
        choices: Iterable[Any] | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        self.file = file
        self.choices = list(choices) if choices is not None else None
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.file}: " if self.file else ""
        text = f"{where}{self.field}: {self.problem} (got {self.value!r})"
        if self.choices:
            text += f"; valid choices: {', '.join(map(str, self.choices))}"
        return text

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # pickle rebuilds an exception from ``self.args`` (the rendered message) by default, which
        # does not fit ``__init__``; Ray pickles a trial's exception to re-raise it in the driver
        return _rebuild, (self.field, self.value, self.problem, self.file, self.choices)

    def in_file(self, file: str, prefix: str = "") -> ConfigError:
        """The same error, placed in ``file`` under the field path ``prefix``."""
        field = f"{prefix}.{self.field}" if prefix else self.field
        return ConfigError(field, self.value, self.problem, file=file, choices=self.choices)


def _rebuild(
    field: str, value: Any, problem: str, file: str | None, choices: list[Any] | None
) -> ConfigError:
    """A pickled :class:`ConfigError` back (see ``ConfigError.__reduce__``)."""
    return ConfigError(field, value, problem, file=file, choices=choices)


class DamagedResults(ConfigError):
    """A file of an experiment folder that is not what taso-tune or Ray Tune wrote there: a
    ``result.json`` record of the wrong type, a Tune state that is not JSON. ``field`` names the line
    and the field (``line 12: val_acc``), ``file`` the file; the CLI exits 2 and writes nothing."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild_damaged, (self.field, self.value, self.problem, self.file)


def _rebuild_damaged(field: str, value: Any, problem: str, file: str | None) -> DamagedResults:
    """A pickled :class:`DamagedResults` back."""
    return DamagedResults(field, value, problem, file=file)


class Registry(dict):
    """A name -> object mapping whose lookup fails with the list of valid names."""

    def __init__(self, kind: str, entries: dict[str, Any] | None = None) -> None:
        super().__init__(entries or {})
        self.kind = kind

    def register(self, name: str):
        def decorate(obj):
            self[name] = obj
            return obj

        return decorate

    def get_or_fail(self, name: str, field: str | None = None) -> Any:
        if name not in self:
            raise ConfigError(
                field or self.kind, name, f"unknown {self.kind}", choices=sorted(self)
            )
        return self[name]
