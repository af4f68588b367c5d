"""The package's import graph: one namespace, no cycles, and the device side never reaches the host side."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.package_layout import package_folder, python_modules, setuptools_config
from tests.paths import REPO_ROOT

MAPPED_ROOTS = ("edgercnn", "export", "runtime", "plugins")


def imported_modules(name: str, file: Path, known: set[str]) -> set[str]:
    """Modules of the package that ``file`` imports, wherever the import sits (lazy ones too)."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from pkg import sub`` imports the submodule when there is one
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in known)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = python_modules()
    known = set(modules)
    return {name: imported_modules(name, file, known) for name, file in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 80, f"the walk found too few modules ({len(graph)}): is pyproject's list complete?"
    assert cycles(graph) == []


def test_every_module_lives_under_the_one_namespace() -> None:
    assert all(name == "edgercnn" or name.startswith("edgercnn.") for name in python_modules())


def test_every_python_folder_is_a_declared_package() -> None:
    config = setuptools_config()
    declared = {package_folder(p, config.get("package-dir", {})).resolve() for p in config["packages"]}
    folders = {
        init.parent.resolve()
        for root in MAPPED_ROOTS
        for init in (REPO_ROOT / root).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    missing = sorted(str(f.relative_to(REPO_ROOT)) for f in folders - declared)
    assert not missing, f"folders with __init__.py that the wheel would leave out: {missing}"


def test_the_runtime_imports_nothing_outside_itself() -> None:
    graph = import_graph()
    leaks = {
        name: sorted(d for d in deps if not d.startswith("edgercnn.runtime"))
        for name, deps in graph.items()
        if name.startswith("edgercnn.runtime")
    }
    assert {k: v for k, v in leaks.items() if v} == {}


def test_the_runtime_uses_relative_imports_only() -> None:
    """Absolute ``edgercnn.runtime`` imports would break the folder when it is copied to a camera alone."""
    offenders = []
    for name, file in python_modules().items():
        if not name.startswith("edgercnn.runtime"):
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) and not node.level else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            if any(n.split(".")[0] in MAPPED_ROOTS for n in names):
                offenders.append(f"{file.relative_to(REPO_ROOT)}:{node.lineno}")
    assert offenders == []
