"""provenance.json: where a fetched model came from and the hash of every file it holds."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.environment import describe_environment
from mi_oracle.hashing import digest_file
from mi_oracle.models.folder import summarize_config

PROVENANCE_FILE = "provenance.json"
FORMAT = "mi-oracle/model-provenance"
FORMAT_VERSION = 1


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link the file ``source`` names (symlinks followed) to ``target``, else copy it."""
    source = Path(source).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def file_records(folder: Path, names: Iterable[str]) -> list[dict[str, Any]]:
    """Size and sha256 of each named file in ``folder``, sorted by name."""
    records = []
    for name in sorted(names):
        digest = digest_file(Path(folder) / name)
        records.append({"path": name, "size": digest.size, "sha256": digest.sha256})
    return records


def write_provenance(folder: Path, files: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """Write ``folder/provenance.json`` from ``fields`` plus the files, model summary and environment."""
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **fields,
        "model": summarize_config(folder),
        "files": files,
        "environment": describe_environment(),
    }
    write_json_atomic(Path(folder) / PROVENANCE_FILE, record)
    return record


def place_model(folder: Path, names: list[str], target: Path, **fields: Any) -> dict[str, Any]:
    """Link or copy ``names`` from ``folder`` into ``target`` with their provenance, atomically."""
    from mi_oracle.models.folder import required_files

    with atomic_directory(Path(target)) as staging:
        for file_name in names:
            link_or_copy(Path(folder) / file_name, staging / file_name)
        required_files(staging)
        return write_provenance(staging, file_records(staging, names), **fields)
