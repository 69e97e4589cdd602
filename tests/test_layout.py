"""The package's shape (DESIGN 2): parsed from the source, nothing imported.

* no import cycle among gsnn's modules (function-level imports count too);
* the config schema (the section modules of ``gsnn.config``) imports nothing from gsnn
  but itself;
* no gsnn import inside a function (a late import is how a cycle gets hidden);
* no module over MAX_LINES lines (a module that long mixes concerns);
* no top-level module but the apps (cli, demo, demo_configs, bench): the old flat
  names (``gsnn.train``, ``gsnn.configs``, ...) are gone.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "gsnn"
MAX_LINES = 420


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict) -> str | None:
    """The gsnn module an imported dotted name refers to (a module or its package)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """``(graph, late)``: module -> gsnn modules it imports, and the imports made inside
    a function as ``(module, line, imported)``."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    late = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text())
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    keep = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(keep + ([base] if base else []))
                # `from pkg import mod` imports the module and runs pkg/__init__ first (an
                # edge to pkg, except the top-level gsnn); `from mod import name`, the module
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
                names += [base] if base != "gsnn" and base in modules else []
            for name in names:
                if not name.startswith("gsnn"):
                    continue
                target = _resolve(name, modules)
                if target and target != mod:
                    graph[mod].add(target)
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gsnn"):
                        late.append((mod, node.lineno, node.module))
                    elif isinstance(node, ast.Import):
                        late += [(mod, node.lineno, a.name) for a in node.names if a.name.startswith("gsnn")]
    return graph, late


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == []


# The schema's modules (the loader and the migration, which read files, are not part of it).
SCHEMA = {f"gsnn.config.{m}" for m in ("names", "model", "train", "data", "evolve", "evolve_sections", "experiment")}


def test_the_schema_imports_nothing_from_gsnn():
    """Every part reads the config schema; it must not reach back into any of them."""
    graph, late = import_graph()
    assert SCHEMA <= set(graph)
    assert {m: graph[m] - SCHEMA for m in SCHEMA} == {m: set() for m in SCHEMA}
    assert [x for x in late if x[0] in SCHEMA] == []
    # the loader and the migration read files; they reach into nothing but the schema
    assert graph["gsnn.config.loader"] - SCHEMA <= {"gsnn.config.migration"}
    assert graph["gsnn.config.migration"] == set()


def test_no_gsnn_import_inside_a_function():
    _, late = import_graph()
    assert late == []


def test_no_module_over_the_size_limit():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


# The flat module names of before the subpackages (issue 12); their names are re-exported
# by gsnn/__init__.py and live in the subpackages, so no top-level module of that name.
REMOVED = {"gsnn.energy", "gsnn.evolve", "gsnn.fitness", "gsnn.genome", "gsnn.layers", "gsnn.models",
           "gsnn.neurons", "gsnn.train", "gsnn.configs", "gsnn.config_migration"}
TOP_LEVEL = {"gsnn", "gsnn.cli", "gsnn.demo", "gsnn.demo_configs", "gsnn.bench"}


def test_no_top_level_modules_but_the_apps():
    modules = _modules()
    assert REMOVED & set(modules) == set()
    top = {m for m, p in modules.items() if m.count(".") <= 1 and p.parent == PACKAGE and p.name != "__init__.py"}
    assert top | {"gsnn"} <= TOP_LEVEL, sorted(top - TOP_LEVEL)
