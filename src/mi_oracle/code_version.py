"""A stage's code version: a hash of the package modules its entry module reaches by import.

Snakemake sees only a rule's adapter script, so a change in the package (an encoder, a writer)
would leave outputs that look current. Rules pass ``code_version(<entry module>)`` as a param:
a change in any module the stage imports, directly or not, reruns it, and only it. A compiled
module counts by its C source; a module's data files count when it names them by a string
literal relative to its folder (a file, or a folder such as ``templates``: every file in it).
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
    for candidate in (
        ROOT / relative.with_suffix(".py"),
        ROOT / relative / "__init__.py",
        ROOT / relative.with_suffix(".c"),  # an extension module: its source
    ):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _data_files(name: str) -> tuple[Path, ...]:
    """The files beside module ``name`` that it names by a string literal (folders: all their files)."""
    path = _module_file(name)
    if path is None or path.suffix != ".py":
        return ()
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if not node.value.strip(". /") or any(c in node.value for c in "\n\0*") or len(node.value) > 200:
            continue
        named = path.parent / node.value
        if not named.resolve().is_relative_to(ROOT):  # an absolute path (/proc/cpuinfo), or ..
            continue
        if named.is_file() and named.suffix not in (".py", ".pyc"):
            found.add(named)
        elif named.is_dir() and named.resolve() != path.parent.resolve():
            found.update(f for f in named.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    return tuple(sorted(found))


@functools.cache
def _imports(name: str) -> tuple[str, ...]:
    """The package modules ``name`` imports anywhere in its body (function-level imports too)."""
    path = _module_file(name)
    if path is None or path.suffix != ".py":
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
    """sha256 (first 16 hex) over the name and bytes of every module ``entry`` reaches, and of
    the data files those modules name."""
    digest = hashlib.sha256()
    for name in reached_modules(entry):
        digest.update(name.encode() + b"\0" + _module_file(name).read_bytes() + b"\0")
        for data in _data_files(name):
            relative = data.relative_to(ROOT).as_posix()
            digest.update(relative.encode() + b"\0" + data.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
