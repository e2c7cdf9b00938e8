"""The YAML reader of space files: duplicate keys refused, ``5e-4`` read as a number, syntax errors
placed at their line."""

from __future__ import annotations

import re
from typing import Any

import yaml

from taso_tune.core.errors import ConfigError


class SpaceLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys and reads ``5e-4`` as a number.

    YAML 1.1 (PyYAML) needs a dot in a float with an exponent, so ``lr: 5e-4`` would be the string
    ``"5e-4"``; learning rates are written that way often enough to accept it.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if first != line:
                raise ConfigError(f"line {line}", key, f"duplicate key (first set on line {first})")
        return super().construct_mapping(node, deep=deep)


SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def read_yaml(path: str) -> Any:
    """Parse the YAML file at ``path``; a syntax error names the file and the line."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError("space", path, "file not found") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as err:
        raise ConfigError("space", path, f"cannot read the file ({type(err).__name__})") from None
    try:
        return yaml.load(text, Loader=SpaceLoader)  # noqa: S506 (SpaceLoader is a SafeLoader)
    except ConfigError as err:
        raise err.in_file(path) from None
    except yaml.YAMLError as err:
        raise _syntax_error(path, text, err) from None


def _syntax_error(path: str, text: str, err: yaml.YAMLError) -> ConfigError:
    """Where the YAML parser gave up: the problem's line, or the construct's start at end of file."""
    lines = text.splitlines()
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    mark = getattr(err, "problem_mark", None)
    context_mark = getattr(err, "context_mark", None)
    if mark is None or mark.line >= len(lines) or not lines[mark.line].strip():
        mark = context_mark or mark
    if context:
        problem = f"{context}: {problem}"
    if mark is None:
        return ConfigError("yaml", None, f"not valid YAML: {problem}", file=path)
    snippet = lines[mark.line].strip() if mark.line < len(lines) else ""
    return ConfigError(f"line {mark.line + 1}", snippet, f"not valid YAML: {problem}", file=path)
