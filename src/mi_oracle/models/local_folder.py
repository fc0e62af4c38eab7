"""Source ``local``: an existing Hugging Face model folder, validated and hashed."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from mi_oracle.config import relative_to_workdir, resolve_inside_roots
from mi_oracle.models.folder import required_files
from mi_oracle.models.provenance import place_model

log = logging.getLogger(__name__)


def fetch_local(name: str, path: str, roots: Iterable[str], target: Path, base: Path | None = None) -> dict:
    """Validate the folder at ``path`` and place its needed files, with provenance, at ``target``."""
    base = Path.cwd() if base is None else base
    source = resolve_inside_roots(path, roots, key="model.path", base=base)
    needed = required_files(source)
    log.info("local model %s: %d files from %s", name, len(needed), source)
    return place_model(
        source,
        needed,
        target,
        name=name,
        source="local",
        repo=None,
        requested_revision=None,
        resolved_revision=None,
        local_path=relative_to_workdir(source, base),
        verified_against="none: a local folder announces no hashes; these are recorded as found",
    )
