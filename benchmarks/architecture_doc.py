"""Write the module table of ``docs/architecture.md`` from the tree: one section per layer package,
bottom up, each module with the first paragraph of its module docstring.

The layers and their order come from ``LAYERS`` in ``tests/test_architecture.py`` (the one place
they are written), read from its source; the modules and their docstrings are read with ``ast``, so
nothing is imported (no torch, no Ray). The table goes between the ``<!-- architecture:begin -->``
and ``<!-- architecture:end -->`` markers; the prose around them is written by hand.

    python benchmarks/architecture_doc.py           # rewrite the table
    python benchmarks/architecture_doc.py --check   # exit 1 if the table is out of date
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from common import REPO_ROOT, write_between_markers

PACKAGE = REPO_ROOT / "taso_tune"
DOC = REPO_ROOT / "docs" / "architecture.md"
LAYER_TEST = REPO_ROOT / "tests" / "test_architecture.py"
BEGIN = "<!-- architecture:begin -->"
END = "<!-- architecture:end -->"

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc):`(~?)([^`]+)`")


def layers() -> dict[str, int]:
    """``LAYERS`` of the architecture test: each top-level package (or module) and its layer."""
    for node in ast.parse(LAYER_TEST.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "LAYERS" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{LAYER_TEST}: no LAYERS table")


def _markdown(text: str) -> str:
    """Sphinx roles and double backticks as Markdown code."""

    def role(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"

    return _ROLE.sub(role, text).replace("``", "`")


def summary(path: Path) -> str:
    """The first paragraph of ``path``'s module docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text()))
    if not doc:
        raise SystemExit(f"{path.relative_to(REPO_ROOT)}: no module docstring")
    line = " ".join(doc.split("\n\n")[0].split())
    if line.endswith(":"):  # a list follows in the docstring
        line = line[:-1] + "."
    return _markdown(line).replace("|", "\\|")


def _row(path: Path, base: Path) -> str:
    shown = path.relative_to(base).as_posix()
    link = path.relative_to(REPO_ROOT).as_posix()
    return f"| [`{shown}`](../{link}) | {summary(path)} |"


def section(name: str, layer: int) -> str:
    """The section of one top-level entry of ``taso_tune/``: a package's modules, or one module."""
    module = PACKAGE / f"{name}.py"
    if module.exists():
        return "\n".join(
            [
                f"### `{name}.py` (layer {layer})",
                "",
                "| module | what it is for |",
                "|---|---|",
                _row(module, PACKAGE),
            ]
        )
    folder = PACKAGE / name
    lines = [f"### `{name}/` (layer {layer})", "", summary(folder / "__init__.py"), ""]
    lines += ["| module | what it is for |", "|---|---|"]
    for path in sorted(folder.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == folder:
            continue  # its docstring heads the section
        lines.append(_row(path, folder))
    return "\n".join(lines)


def table() -> str:
    """Every layer's section, bottom up (packages of one layer in ``ls`` order)."""
    table = layers()
    on_disk = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    if on_disk - {"__init__"} != set(table):
        raise SystemExit(
            f"taso_tune/ holds {sorted(on_disk - {'__init__'})}, but LAYERS names {sorted(table)}"
        )
    order = sorted(table, key=lambda name: (table[name], name))
    root = (
        f"The package root ([`taso_tune/__init__.py`](../taso_tune/__init__.py)): "
        f"{summary(PACKAGE / '__init__.py')}"
    )
    return "\n\n".join([root, *(section(name, table[name]) for name in order)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if docs/architecture.md is out of date"
    )
    args = parser.parse_args()
    block = table()
    if args.check:
        text = DOC.read_text()
        inside = text.split(BEGIN, 1)[1].split(END, 1)[0] if BEGIN in text else ""
        if inside.strip() != block.strip():
            print(f"{DOC.relative_to(REPO_ROOT)} is out of date: run {sys.argv[0]}")
            return 1
        return 0
    write_between_markers(DOC, BEGIN, END, block)
    print(f"wrote the module table of {DOC.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
