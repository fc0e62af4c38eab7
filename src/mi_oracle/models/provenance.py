"""provenance.json: where a fetched model came from and the hash of every file it holds."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.environment import describe_environment
from mi_oracle.errors import ModelFolderError
from mi_oracle.hashing import digest_file, sha256_file
from mi_oracle.json_files import read_json
from mi_oracle.layout import PROVENANCE_FILE
from mi_oracle.models.folder import summarize_config

FORMAT = "mi-oracle/model-provenance"
FORMAT_VERSION = 1
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link the file ``source`` names (symlinks followed) to ``target``, else copy it."""
    source = Path(source).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def file_records(folder: Path, names: Iterable[str]) -> list[dict[str, Any]]:
    """Size, sha256 and modification time (ns) of each named file in ``folder``, sorted by name."""
    records = []
    for name in sorted(names):
        path = Path(folder) / name
        digest = digest_file(path)
        records.append(
            {"path": name, "size": digest.size, "sha256": digest.sha256, "mtime_ns": path.stat().st_mtime_ns}
        )
    return records


IDENTITY = ("name", "repo", "resolved_revision")


def model_identity(model_dir: Path, with_weights: bool = False) -> dict[str, Any]:
    """What names a fetched model in every output: name, repo and resolved revision (``None`` where
    the source has none); ``with_weights`` adds its source and each weight file's sha256."""
    provenance = read_json(Path(model_dir) / PROVENANCE_FILE, ModelFolderError)
    identity: dict[str, Any] = {key: provenance.get(key) for key in IDENTITY}
    if with_weights:
        identity["source"] = provenance.get("source")
        identity["weights_sha256"] = {
            record["path"]: record["sha256"]
            for record in provenance.get("files", [])
            if record["path"].endswith(WEIGHT_SUFFIXES)
        }
    return identity


def verify_model_files(model_dir: Path, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> None:
    """Check the weight files of a fetched model against its provenance.json before they are used.

    A file whose size and modification time are those recorded at the fetch is the file that was
    hashed (rewriting it changes both); any other is hashed again, and a different sha256 is an
    error naming the file and both hashes, so no output records the hash of other weights.
    """
    provenance_path = Path(model_dir) / PROVENANCE_FILE
    provenance = read_json(provenance_path, ModelFolderError)
    for record in provenance.get("files", []):
        if not record["path"].endswith(suffixes):
            continue
        path = Path(model_dir) / record["path"]
        try:
            stat = path.stat()
        except OSError as error:
            raise ModelFolderError(f"{path}: listed in {provenance_path} but unreadable ({error})") from error
        if stat.st_size == record["size"] and stat.st_mtime_ns == record.get("mtime_ns"):
            continue
        actual = sha256_file(path)
        if actual != record["sha256"]:
            raise ModelFolderError(
                f"{path}: sha256 is {actual} but {provenance_path} recorded {record['sha256']}; the "
                "model changed after it was fetched: fetch it again (snakemake --forcerun fetch_model)"
            )


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
