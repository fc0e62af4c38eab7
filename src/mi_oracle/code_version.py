"""A stage's code version: a hash of the package modules its entry module reaches by import.

Snakemake sees only a rule's adapter script, so a change in the package (an encoder, a writer)
would leave outputs that look current. Rules pass ``code_version(<entry module>)`` as a param:
a change in any module the stage imports, directly or not, reruns it, and only it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "mi_oracle"
ROOT = Path(__file__).resolve().parent


def _module_file(name: str) -> Path | None:
    """The source file of package module ``name`` (a package's ``__init__.py``), if it exists."""
    parts = name.split(".")[1:]
    if not parts:
        return ROOT / "__init__.py"
    relative = Path(*parts)
    for candidate in (ROOT / relative.with_suffix(".py"), ROOT / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _imports(name: str) -> tuple[str, ...]:
    """The package modules ``name`` imports anywhere in its body (function-level imports too)."""
    path = _module_file(name)
    if path is None:
        return ()
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]  # submodules
    return tuple(sorted({n for n in found if n.split(".")[0] == PACKAGE and _module_file(n)}))


def reached_modules(entry: str) -> list[str]:
    """``entry`` and every package module it reaches by import, with the packages along the way."""
    seen: set[str] = set()
    pending = [entry]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent __init__ runs too
        pending += _imports(name)
    return sorted(name for name in seen if _module_file(name))


@functools.cache
def code_version(entry: str) -> str:
    """sha256 (first 16 hex) over the name and bytes of every module ``entry`` reaches."""
    digest = hashlib.sha256()
    for name in reached_modules(entry):
        digest.update(name.encode() + b"\0" + _module_file(name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]
