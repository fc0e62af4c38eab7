"""Generate one configured reference and write it, byte-reproducibly, under a temporary name."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mi_oracle.atomic import write_json_atomic
from mi_oracle.models.folder import read_json
from mi_oracle.references.forward_reference import forward_reference
from mi_oracle.references.plan import transcoder_layers
from mi_oracle.references.sae_reference import sae_reference
from mi_oracle.references.transcoder_reference import transcoder_reference

log = logging.getLogger(__name__)


def build_reference(
    item: Mapping[str, Any],
    options: Mapping[str, Any],
    model_dir: Path,
    manifest: Mapping[str, Any] | None,
    base: Path,
) -> dict[str, Any]:
    """The reference document ``item`` (one entry of ``references.items``) describes."""
    kind = item["kind"]
    settings = {key: options[key] for key in ("device", "dtype", "threads")}
    if kind == "forward":
        return forward_reference(item["prompts"], model_dir, settings)
    assert manifest is not None
    if kind == "sae":
        return sae_reference(manifest, item["layer"], item["prompt"], model_dir, settings, base)
    available = [entry["layer"] for entry in manifest["available_layers"]]
    layers = transcoder_layers(item, available)
    return transcoder_reference(kind, manifest, layers, options["seeds_per_layer"], base)


def write_reference(
    item: Mapping[str, Any],
    options: Mapping[str, Any],
    model_dir: Path,
    manifest_path: Path | None,
    output: Path,
    base: Path | None = None,
) -> dict[str, Any]:
    """Build the reference and write it: keys in schema order, floats as fp32 values, ASCII, no NaN."""
    manifest = read_json(manifest_path) if manifest_path is not None else None
    document = build_reference(item, options, Path(model_dir), manifest, (base or Path.cwd()).resolve())
    write_json_atomic(Path(output), document, sort_keys=False, ensure_ascii=True, allow_nan=False)
    log.info("%s: %s reference written to %s", item["name"], item["kind"], output)
    return document
