"""Where a resolved set's weights and curation YAML came from, as the references name them."""

from __future__ import annotations

from pathlib import PurePosixPath

from mi_oracle.dictionaries.manifest import DictionaryFile, Manifest


def weights_repo(manifest: Manifest) -> str:
    """The hub repo of the set's weight files, or the local folder they were read from."""
    first = manifest.layers[0].files[0]
    if first.repo:
        return first.repo
    curation = manifest.curation or {}
    if curation.get("local_path"):
        return str(PurePosixPath(curation["local_path"]).parent)
    return str(PurePosixPath(first.local_path).parent)


def curation_repo(manifest: Manifest) -> str:
    """The hub repo of the set's curation YAML, or its local path (``inline SAE set`` for inline sets)."""
    curation = manifest.curation or {}
    return curation.get("repo") or curation.get("local_path") or curation.get("source", "")


def weight_path(file: DictionaryFile) -> str:
    """A file's path inside its hub repo, or the path its curation entry gave."""
    return file.path or file.source
