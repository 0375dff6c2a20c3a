"""The layout docs/ARCHITECTURE.md describes, checked: every import points down the layers (or
within one), no module-level import cycle, modules and functions within their size limits.
A new module must be given a layer here and in the map."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "dscbench"

# Bottom to top; a module may import from its own layer and those below (docs/ARCHITECTURE.md).
LAYERS = {
    "foundation": ("dscbench", "about", "errors", "defaults", "status", "jsonsafe", "signals",
                   "lock", "labels"),
    "model": ("spec", "shards", "counting", "stats", "env", "roofline", "memory", "parity",
              "measure", "ops", "models", "training", "backends", "plan", "calibrate", "cold",
              "canary", "where", "kernels", "instructions", "accuracy"),
    "data": ("results",),
    "execution": ("workers", "worker", "runner", "extra_rounds", "counted_rounds", "sweep_state"),
    "judging": ("compare", "analysis", "merge", "history", "predict"),
    "rendering": ("export", "plot"),
    "interface": ("api", "commands", "cli", "__main__"),
}  # fmt: skip
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Modules longer than that, and why.
LONG_MODULES = {
    "runner.py": "the Coordinator: one algorithm in 14 methods of under 50 lines",
}
# Functions longer than that, and why.
LONG_FUNCTIONS = {
    "commands/run/command.py:run": "option declarations (its body is ~40 lines)",
    "commands/gate.py:gate": "option declarations (its body is ~40 lines)",
    "commands/compare.py:compare_runs": "option declarations (its body is ~20 lines)",
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "dscbench"
    for rank, names in enumerate(LAYERS.values()):
        if top in names:
            return rank
    raise AssertionError(f"{module}: in no layer (give it one in LAYERS and the map)")


def imports(path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(module-level imports, imports inside functions) of dscbench modules; imports only for
    type checking are neither."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in tree.body
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    top_level = {
        id(node)
        for block in tree.body
        if not (isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test))
        for node in ast.walk(block)
        if not isinstance(block, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    eager, lazy = set(), set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                (eager if id(node) in top_level else lazy).add(name)
    return eager, lazy


def test_every_import_points_down_the_layers():
    known = modules()
    up = []
    for name, path in sorted(known.items()):
        eager, lazy = imports(path, known)
        for target in sorted(eager | lazy):
            if target != name and layer_of(target) > layer_of(name):
                up.append(f"{name} -> {target}")
    assert up == []


def test_no_import_cycle():
    """Lazy imports included (a function's import is an arrow too); a module's own parent
    packages are not (Python imports them first, whatever the module says)."""
    known = modules()
    graph = defaultdict(set)
    for name, path in known.items():
        eager, lazy = imports(path, known)
        graph[name] = {t for t in eager | lazy if t != name and not name.startswith(t + ".")}
    seen, on_path, cycles = set(), [], []

    def visit(node: str) -> None:
        if node in on_path:
            cycles.append([*on_path[on_path.index(node) :], node])
            return
        if node in seen:
            return
        seen.add(node)
        on_path.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        on_path.pop()

    for node in sorted(graph):
        visit(node)
    assert cycles == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_modules_and_functions_stay_small(path):
    relative = path.relative_to(PACKAGE).as_posix()
    lines = path.read_text().count("\n")
    assert lines <= MAX_MODULE_LINES or relative in LONG_MODULES, f"{relative}: {lines} lines"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            key = f"{relative}:{node.name}"
            assert length <= MAX_FUNCTION_LINES or key in LONG_FUNCTIONS, f"{key}: {length}"
