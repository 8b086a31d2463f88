"""The house rules, checked on the source: layers point one way and no module imports in a circle.

Every import counts, also the lazy ones inside functions: core (workbench/) <- analyses (analysis/) <-
{CLI (workbench/cli/, `python -m workbench`), app (app.py, app_pages/)}. The CLI and the app never
import each other; nothing below them imports them; no module below the app imports streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {
    "core": {"core"},
    "analysis": {"core", "analysis"},
    "cli": {"core", "analysis", "cli"},
    "app": {"core", "analysis", "app"},
}


def modules() -> dict[str, Path]:
    """Every project module by dotted name (packages by their own name)."""
    found = {}
    for root in ("workbench", "analysis", "app_pages"):
        for path in (REPO / root).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    found["app"] = REPO / "app.py"
    return found


def layer(module: str) -> str:
    """The floor a module lives on."""
    if module in ("workbench.cli", "workbench.__main__") or module.startswith("workbench.cli."):
        return "cli"
    if module == "app" or module.split(".")[0] == "app_pages":
        return "app"
    return "core" if module.split(".")[0] == "workbench" else "analysis"


def imported_names(module: str, path: Path) -> set[str]:
    """Every name an import statement anywhere in the file brings in, resolved to absolute names."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name resolves to the longest module prefix)."""
    known = modules()
    edges = {}
    for module, path in known.items():
        targets = set()
        for name in imported_names(module, path):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        edges[module] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for vertex in sorted(edges):
        if vertex not in index:
            visit(vertex)
    return found


def test_the_scan_sees_lazy_imports_and_resolves_relative_ones() -> None:
    edges = graph()
    assert "workbench.errors" in edges["workbench.cli"]  # `from ..errors import is_user_error`
    # a function-level import of analysis in a CLI module is an edge like any other
    assert "analysis.temporal" in edges["workbench.cli.temporal"]
    assert "workbench.models.schemes" in edges["workbench.models.resnet"]  # `from .schemes import ...`
    assert "workbench.errors" in edges["workbench.models.state"]  # `from ..errors import ...`


def test_layers_point_one_way() -> None:
    upward = sorted(f"{a} ({layer(a)}) -> {b} ({layer(b)})" for a, targets in graph().items() for b in targets
                    if layer(b) not in ALLOWED[layer(a)])
    assert upward == [], "\n".join(upward)


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("root", ["workbench", "analysis"])
def test_below_the_app_nothing_imports_streamlit(root: str) -> None:
    offenders = [module for module, path in modules().items() if module.split(".")[0] == root
                 and any(name.split(".")[0] == "streamlit" for name in imported_names(module, path))]
    assert offenders == []
