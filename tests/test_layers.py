"""The layer rules of docs/architecture.md, read from every import in the source (inside functions and
under TYPE_CHECKING too): a module imports its own floor and the floors below, never above; device
and cloud do not import each other; and no two packages (folders) import each other, directly or
round a longer cycle; and no top-level package shadows another installed distribution."""

from __future__ import annotations

import ast
import importlib.metadata
from collections import defaultdict
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"edgeweave": 0, "kernels": 1, "device": 2, "cloud": 2, "coordinator": 3, "apps": 4, "benchmarks": 5}


def _modules() -> dict[str, Path]:
    out = {}
    for top in FLOORS:
        for f in (ROOT / top).rglob("*.py"):
            out[".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = f
    return out


MODULES = _modules()
PACKAGES = {m if f.name == "__init__.py" else m.rpartition(".")[0] for m, f in MODULES.items()}


def _package_of(module: str) -> str:
    f = MODULES[module]
    return module if f.name == "__init__.py" else module.rpartition(".")[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of a project module, ``from pkg import mod`` resolved to ``pkg.mod``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.append((node.lineno, sub if sub in MODULES else node.module))
    return [(line, name) for line, name in out if name.split(".")[0] in FLOORS]


def _target(name: str) -> str:
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def test_no_module_imports_a_floor_above_its_own_or_beside_it() -> None:
    bad = []
    for module, path in MODULES.items():
        top = module.split(".")[0]
        for line, name in _imports(path):
            other = name.split(".")[0]
            if other != top and FLOORS[other] >= FLOORS[top]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_two_packages_import_each_other() -> None:
    graph = nx.DiGraph()
    why: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, path in MODULES.items():
        src = _package_of(module)
        for line, name in _imports(path):
            dst = _package_of(_target(name))
            if dst != src:
                graph.add_edge(src, dst)
                why[src, dst].append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    cycles = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
    report = []
    for cycle in cycles:
        edges = [(a, b) for a in cycle for b in cycle if (a, b) in why]
        report.append(" <-> ".join(sorted(cycle)) + "".join(f"\n  {w}" for e in edges for w in why[e][:2]))
    assert not cycles, "\n".join(report)


def test_no_top_level_package_shadows_an_installed_distribution() -> None:
    """Our top-level packages are importable from the checkout, so one named like another installed
    distribution's package hides it: transformers 5.25 requires Hugging Face's ``kernels``, and
    every transformers import then failed on our ``kernels/`` (a fresh install, in CI)."""
    owners = importlib.metadata.packages_distributions()
    shadowed = {top: others for top in FLOORS if (others := set(owners.get(top, [])) - {"edgeweave"})}
    assert not shadowed, f"top-level packages that other installed distributions also ship: {shadowed}"
