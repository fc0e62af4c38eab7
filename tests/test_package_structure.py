"""The package's shape: no import cycles, no import from a later stage into an earlier one, and no
module over 330 lines. Read from the source (every import, module-level or inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mi_oracle"
# the stages in the data's order; a module may import its own stage and earlier ones only
# (a top-level module stands at the latest stage it imports)
STAGES = [
    "numerics",
    "formats",
    "models",
    "capture",  # the synthetic dictionaries are fitted to captured activations
    "dictionaries",
    "encoding",
    "references",
    "peers",
    "crossval",
]
MAX_LINES = 330


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports (``from a import b`` counts a.b when it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def declared_stage(module: str) -> int:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else -1


def stages(edges: dict[str, set[str]]) -> dict[str, int]:
    """Each module's stage: its package's; a top-level module's is the latest it imports."""
    found = {module: declared_stage(module) for module in edges}
    changed = True
    while changed:
        changed = False
        for module, others in edges.items():
            if declared_stage(module) == -1 and others:
                latest = max(found[other] for other in others)
                if latest > found[module]:
                    found[module], changed = latest, True
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_in_the_package():
    assert cycles(graph()) == []


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_a_later_stage():
    edges = graph()
    stage = stages(edges)
    upward = [
        f"{module} imports {other}"
        for module, others in edges.items()
        for other in sorted(others)
        if stage[other] > stage[module]
    ]
    assert upward == []
    assert stage["mi_oracle.errors"] == -1
    assert stage["mi_oracle.references.check"] == STAGES.index("references")


def test_an_upward_import_is_found():
    edges = {"mi_oracle.references.x": {"mi_oracle.crossval.y"}, "mi_oracle.crossval.y": set()}
    stage = stages(edges)
    assert stage["mi_oracle.crossval.y"] > stage["mi_oracle.references.x"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda path: module_name(path))
def test_no_module_is_over_330_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES
