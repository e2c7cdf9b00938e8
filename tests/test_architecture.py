"""The layers of the package, checked from its source: who may import whom, and no cycles.

`ls taso_tune/` shows the layers; `LAYERS` below orders them, one line a package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "taso_tune"

#: The layer of each package; a module imports only from its own layer or below.
LAYERS = {
    "core": 0,  # errors, the typed records that cross layers, range checks, atomic storage
    "schedules": 1,  # the schedule maths (no torch) and its torch adapter
    "stats": 1,  # statistics over seeds, one rule for every caller
    "training": 2,  # models, optimizers, data, one seed's run, a trial's seeds
    "spaces": 3,  # search-space files: parse, validate, expand
    "experiment": 4,  # one experiment folder: Tune's state, the lock, the trust rule
    "tuning": 5,  # the Ray Tune layer: sweeps, trials, schedulers
    "cluster": 5,  # cluster files and their check, Ray Jobs, the dashboard proxy
    "results": 6,  # report, export, studies (plotly lives here)
    "api": 7,  # taso_tune.sweep(...) for notebooks and scripts
    "cli": 8,  # one module per command
}
#: The package root re-exports the schedule maths; its ``__getattr__`` re-exports, lazily, the TASO
#: scheduler and the Python API from the layers above (a facade: nothing imports the root for them).
ROOT_LAYER = 1
ROOT_LAZY_EXPORTS = {"taso_tune.schedules.lr_scheduler", "taso_tune.api"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _root_lazy(tree: ast.Module) -> list[ast.FunctionDef]:
    return [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]


def _imports(path: Path, lazy_root: bool = False) -> set[str]:
    """Every module ``path`` imports (at any depth of the file: lazy imports count too, but for the
    root's lazy re-exports, which only ``lazy_root`` asks for)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    if path == PACKAGE / "__init__.py":
        lazy = _root_lazy(tree)
        body = lazy if lazy_root else [n for n in tree.body if n not in lazy]
        tree = ast.Module(body=body, type_ignores=[])
    for guard in [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    ]:
        guard.body = []  # imports for type annotations only never run
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                name = f"{node.module}.{alias.name}"
                found.add(name if name in MODULES else node.module)
    return found


GRAPH = {
    name: {m for m in _imports(path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else ROOT_LAYER


def _importers(prefix: str) -> set[str]:
    return {
        name
        for name, path in MODULES.items()
        if any(m.split(".")[0] == prefix for m in _imports(path))
    }


def test_the_roots_lazy_reexports_are_the_scheduler_and_the_api():
    assert _imports(PACKAGE / "__init__.py", lazy_root=True) == ROOT_LAZY_EXPORTS


def test_every_module_has_a_layer():
    assert {name.split(".")[1] for name in MODULES if "." in name} <= set(LAYERS)


def test_no_import_cycles():
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_layers_import_only_downward():
    upward = [f"{a} -> {b}" for a, deps in GRAPH.items() for b in deps if _layer(b) > _layer(a)]
    assert upward == []


def test_only_the_ray_layer_imports_ray():
    assert {m.split(".")[1] for m in _importers("ray")} <= {"tuning", "cluster"}


def test_only_results_and_studies_import_plotly():
    assert {m.split(".")[1] for m in _importers("plotly")} <= {"results"}


def test_schedule_maths_imports_no_torch():
    assert "taso_tune.schedules.maths" not in _importers("torch")
    assert not {m for m in GRAPH["taso_tune.schedules.maths"] if _layer(m) > 0}


def test_results_never_import_the_ray_layer():
    reach = [
        f"{a} -> {b}"
        for a, deps in GRAPH.items()
        if a.startswith("taso_tune.results")
        for b in deps
        if b.startswith(("taso_tune.tuning", "taso_tune.cluster"))
    ]
    assert reach == []


def _only_reexports(tree: ast.Module, allowed: set[str]) -> list[str]:
    """The statements of an ``__init__`` that are more than a docstring, imports and ``__all__``."""
    extra = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        names = {t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)}
        if isinstance(node, ast.FunctionDef):
            names = {node.name}
        if names and names <= {"__all__", *allowed}:
            continue
        extra.append(ast.unparse(node).splitlines()[0])
    return extra


@pytest.mark.parametrize("init", sorted(PACKAGE.rglob("__init__.py")), ids=str)
def test_package_inits_only_reexport(init):
    allowed = {"__version__", "__getattr__"} if init.parent == PACKAGE else set()
    assert _only_reexports(ast.parse(init.read_text()), allowed) == []


def test_the_tree_shows_the_layers():
    entries = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert entries == {"__init__", *LAYERS}
