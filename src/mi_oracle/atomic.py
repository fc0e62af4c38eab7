"""Write outputs under a temporary name and rename them into place only when complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; rename it to ``target`` on success.

    On any exception the staging folder is removed, so a failed or killed step never
    leaves something at ``target`` that looks finished.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    os.chmod(staging, 0o777 & ~_current_umask())
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def readable_by_umask(path: Path) -> None:
    """Give a file made by ``tempfile.mkstemp`` (mode 0600) the mode a plain ``open`` would."""
    os.chmod(path, 0o666 & ~_current_umask())


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` once the block succeeds.

    The file gets the mode a plain ``open`` would; on any exception it is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        readable_by_umask(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file."""
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_json_atomic(
    path: Path, payload: Any, sort_keys: bool = True, ensure_ascii: bool = False, allow_nan: bool = True
) -> None:
    """Write ``payload`` as stable, human-readable JSON via a temporary file.

    Keys are sorted unless ``sort_keys`` is False (then they keep the payload's insertion order);
    ``allow_nan`` False refuses NaN and infinity (JSON has no spelling for them).
    """
    options = {"sort_keys": sort_keys, "ensure_ascii": ensure_ascii, "allow_nan": allow_nan}
    write_text_atomic(path, json.dumps(payload, indent=2, **options) + "\n")
