"""Where a resolved set's weights and curation YAML came from, as the references name them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any


def weights_repo(manifest: Mapping[str, Any]) -> str:
    """The hub repo of the set's weight files, or the local folder they were read from."""
    first = manifest["layers"][0]["files"][0]
    if first.get("repo"):
        return first["repo"]
    curation = manifest.get("curation") or {}
    if curation.get("local_path"):
        return str(PurePosixPath(curation["local_path"]).parent)
    return str(PurePosixPath(first["local_path"]).parent)


def curation_repo(manifest: Mapping[str, Any]) -> str:
    """The hub repo of the set's curation YAML, or its local path (``inline SAE set`` for inline sets)."""
    curation = manifest.get("curation") or {}
    return curation.get("repo") or curation.get("local_path") or curation.get("source", "")


def weight_path(file: Mapping[str, Any]) -> str:
    """A file's path inside its hub repo, or the path its curation entry gave."""
    return file.get("path") or file["source"]
