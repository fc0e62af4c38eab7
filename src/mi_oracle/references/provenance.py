"""The ``environment`` block every reference carries (candle-mi's readers ignore the key)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.environment import package_versions
from mi_oracle.models.provenance import model_identity, verify_model_files

ENVIRONMENT_KEY = "environment"


def model_record(model_dir: Path) -> dict[str, Any]:
    """Repo, revision, source and the sha256 of every weight file of a fetched model folder, each
    checked against the file as it is now (a weight file changed after the fetch is an error)."""
    verify_model_files(model_dir)
    return model_identity(model_dir, with_weights=True)


def dictionary_record(manifest: Manifest, layers: list[int]) -> dict[str, Any]:
    """The set, whether it is synthetic, and every file of ``layers`` with its revision and sha256."""
    files = [
        {
            "layer": record.layer,
            "source": file.source,
            "repo": file.repo,
            "resolved_revision": file.resolved_revision,
            "sha256": file.sha256,
        }
        for record in manifest.layers
        if record.layer in layers
        for file in record.files
    ]
    return {
        "set": manifest.name,
        "synthetic": manifest.synthetic,
        "curation": manifest.curation_source,
        "files": files,
    }


def platform_label() -> str:
    """The operating system and architecture (``Linux-x86_64``): the machine's details go to provenance."""
    return f"{platform.system()}-{platform.machine()}"


def environment_block(device: str, dtype: str, **records: Any) -> dict[str, Any]:
    """Library versions, device and dtype, plus ``records`` (model, dictionary).

    Only what the config and the pinned environment determine: the machine it ran on (hardware,
    platform, interpreter) goes to the reference's provenance file, so that the reference's bytes
    are the same on every machine (the numerics record is added by ``generate``).
    """
    return {
        "packages": package_versions(),
        "device": device,
        "dtype": dtype,
        "deterministic_algorithms": True,
        **records,
    }
