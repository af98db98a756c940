"""The package layout (README "Layout"): every module imports in a fresh interpreter, and
no two modules import each other, directly or through others, even lazily inside a function."""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import indexnet

PACKAGE = Path(indexnet.__file__).resolve().parent


def all_modules() -> list[str]:
    found = (m.name for m in pkgutil.walk_packages([str(PACKAGE)], "indexnet."))
    return ["indexnet"] + sorted(m for m in found if not m.endswith("__main__"))


def module_file(name: str) -> Path:
    parts = name.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports_of(name: str, known: set[str]) -> set[str]:
    """The indexnet modules ``name`` imports anywhere in its body (top level or in a function)."""
    tree = ast.parse(module_file(name).read_text())
    package = name if module_file(name).name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != name}


def test_every_module_imports_in_a_fresh_interpreter():
    """Each module imports on its own (no import-order dependence, no circle that breaks at import time)."""
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    done = subprocess.run([sys.executable, "-c", code, *all_modules()], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_no_import_circle():
    """The import graph of the package (lazy imports included) has no cycle."""
    known = set(all_modules())
    graph = {m: imports_of(m, known) for m in known}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(known):
        if v not in index:
            visit(v)
    assert not cycles, f"import circles: {cycles}"


def test_plugin_stays_light():
    """Loading the pytest plugin (inside indexnet.oracle) imports neither NumPy nor Numba."""
    code = ("import sys, indexnet.oracle.pytest_plugin\n"
            "print(sorted(m for m in ('numpy', 'numba', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
