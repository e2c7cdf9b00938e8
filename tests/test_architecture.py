"""The layers of the package, checked from its source: who may import whom, no cycles, small files.

Bottom up: errors/names/storage -> schedules (pure maths) -> torch pieces (lr_scheduler, optimizers,
models, data) -> train -> spaces -> the Ray layer (tuning, cluster) -> results -> studies -> CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "taso_tune"

#: The layer of each top-level module or package; a module imports only from its own layer or below.
LAYERS = {
    "errors": 0, "names": 0, "storage": 0, "checks": 0,
    "schedules": 1,
    "lr_scheduler": 2, "optimizers": 2, "models": 2, "data": 2, "data_files": 2, "data_readers": 2,
    "seed_stats": 2, "paired_stats": 2,
    "train": 3, "train_folder": 3, "seed_runs": 3, "stacked_runs": 3,
    "spaces": 4,
    "tuning": 5, "cluster": 5,
    "results": 6,
    "studies": 7,
    "commands": 8, "cli": 8,
}  # fmt: skip
#: The package root re-exports the schedule maths and, lazily, the TASO scheduler.
ROOT_LAYER = 2
MAX_MODULE_LINES = 360
MAX_CLASS_LINES = 150


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth of the file: lazy imports count too)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for guard in [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]:
        guard.body = []  # imports for type annotations only never run
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                name = f"{node.module}.{alias.name}"
                found.add(name if name in MODULES else node.module)
    return found


GRAPH = {name: {m for m in _imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else ROOT_LAYER


def _importers(prefix: str) -> set[str]:
    return {name for name, path in MODULES.items() if any(m.split(".")[0] == prefix for m in _imports(path))}


def test_every_module_has_a_layer():
    assert {name.split(".")[1] for name in MODULES if "." in name} <= set(LAYERS)


def test_no_import_cycles():
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_layers_import_only_downward():
    upward = [f"{a} -> {b}" for a, deps in GRAPH.items() for b in deps
              if _layer(b) > _layer(a)]  # fmt: skip
    assert upward == []


def test_only_the_ray_layer_imports_ray():
    assert {m.split(".")[1] for m in _importers("ray")} <= {"tuning", "cluster"}


def test_only_results_and_studies_import_plotly():
    assert {m.split(".")[1] for m in _importers("plotly")} <= {"results", "studies"}


def test_schedule_maths_imports_no_torch():
    assert "taso_tune.schedules" not in _importers("torch")
    assert not {m for m in GRAPH["taso_tune.schedules"] if _layer(m) > 0}


def test_results_never_import_the_ray_layer():
    reach = [f"{a} -> {b}" for a, deps in GRAPH.items() if a.startswith("taso_tune.results")
             for b in deps if b.startswith(("taso_tune.tuning", "taso_tune.cluster"))]  # fmt: skip
    assert reach == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_classes_stay_small(module):
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno - node.lineno + 1 <= MAX_CLASS_LINES, node.name
