"""The package's layers: no module imports one from a higher layer, and no import cycle.

Read from the source (every ``import`` statement, inside functions too), so a lazy import
that runs back up the layers is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "convbench"

#: bottom to top; a module may import its own layer and those below it
LAYERS = [
    ("problem", "format", "timing", "stats", "blas", "threads", "toomcook", "reference", "flops", "sentinel",
     "progress", "machine"),
    ("backends", "data"),
    ("cells", "config", "results", "suites", "fuzz", "sweep"),
    ("runner", "executors"),
    ("reporting", "select", "study", "comparison", "gate", "history", "site", "against"),
    ("cli", "api", "workflow", "check_worker", "__main__", "__init__"),
]


def _layer(module: str) -> int:
    """Layer of ``convbench.X...`` (its first component after the package)."""
    head = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if head in names:
            return i
    raise AssertionError(f"{module}: not in any layer of tests/test_layers.py; add it")


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        yield name, is_pkg, path


def _imports(name: str, is_pkg: bool, path: Path, top_level_only: bool = False):
    """``(imported module, line)`` for every import of a convbench module in ``path``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    package = name if is_pkg else name.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("convbench"):
                    yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("convbench"):
                continue
            if mod == "convbench":  # from . import X: the package's own attribute or a submodule
                for a in node.names:
                    if a.name != "__version__":
                        yield f"convbench.{a.name}", node.lineno
                continue
            yield mod, node.lineno


def test_no_module_imports_a_higher_layer():
    bad = []
    for name, is_pkg, path in _modules():
        mine = _layer(name)
        for mod, line in _imports(name, is_pkg, path):
            if _layer(mod) > mine:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {name} (layer {mine}) imports {mod} "
                           f"(layer {_layer(mod)})")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules():
    graph = {}
    for name, is_pkg, path in _modules():
        graph[name] = {mod for mod, _ in _imports(name, is_pkg, path, top_level_only=True) if mod != name}
    known = set(graph)

    def resolve(mod):  # "from .x import y" may name a module or a package's attribute
        while mod and mod not in known:
            mod = mod.rpartition(".")[0]
        return mod

    graph = {k: {resolve(m) for m in v} - {k, ""} for k, v in graph.items()}
    state: dict = {}
    stack: list = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if m.startswith(n + ".") or n.startswith(m + "."):  # a package and its own modules
                continue
            if state.get(m) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2
    for n in sorted(graph):
        if n not in state:
            visit(n)
