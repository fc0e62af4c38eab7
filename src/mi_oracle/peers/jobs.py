"""What the peers in their own environment are asked to do: job documents built from the manifests,
the capture plan and the references, so a peer's script reads plain files and imports nothing
of mi-oracle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.dictionaries.verify import verified_layer_files
from mi_oracle.formats import companions
from mi_oracle.hook_points import HOOK_POINTS
from mi_oracle.parquet_files import verify_sha256
from mi_oracle.references.item import ReferenceFile

TRANSCODER_KINDS = ("transcoder_set", "cross_layer_transcoder")
REFERENCE_KINDS = ("plt", "clt")
# tokens per (set, layer) that the encoder cross-checks compare (the peer encodes as many):
# enough for every feature's statistics, cheap in float64
MAX_TOKENS = 512


def every_layer_files(manifest: Manifest, base: Path) -> dict[int, list[str]] | str:
    """Local files of every layer the set has (circuit-tracer loads all of a set's layers), or why
    some are missing: resolved layers from the manifest, checked against their recorded sha256 as
    the project's own loaders check them, the others beside a local curation YAML (unresolved: no
    hash was recorded for them)."""
    resolved = {
        record.layer: [str(path) for path in verified_layer_files(record, base, manifest.name)]
        for record in manifest.layers
    }
    curation = (manifest.curation or {}).get("local_path")
    folder = (base / curation).parent if curation else None
    files: dict[int, list[str]] = {}
    missing = []
    for entry in manifest.available_layers:
        layer, source = entry["layer"], entry["source"]
        if layer in resolved:
            files[layer] = resolved[layer]
        elif folder is not None and (folder / source).is_file():
            names = [source, *companions(Path(source).name, layer)]
            files[layer] = [str(folder / Path(source).parent / Path(name).name) for name in names]
        else:
            missing.append(layer)
    if missing:
        return (
            f"circuit-tracer loads every layer of a transcoder set; layers {missing} are not "
            "downloaded (list them in the set's `layers` to fetch them)"
        )
    return files


def circuit_tracer_job(
    manifests: Mapping[str, Manifest],
    points: Mapping[str, Sequence[Sequence[Any]]],
    references: Mapping[str, Mapping[str, Any]],
    capture: Mapping[str, Any] | None,
    base: Path,
    max_tokens: int,
) -> dict[str, Any]:
    """The circuit-tracer peer's job: every transcoder set it can load, with the activation file of
    each encoded layer (``points[set]``: [layer, input file, target file]), the transcoder
    references to re-encode, and the capture on the first prompts (None: no capture).
    ``skipped``: set -> why. Every activation file handed over is checked against its sha256 first."""
    sets, skipped = {}, {}
    for name, manifest in manifests.items():
        if manifest.kind not in TRANSCODER_KINDS:
            skipped[name] = (
                f"not applicable: circuit-tracer loads transcoders, and {name} is a {manifest.kind}"
            )
            continue
        files = every_layer_files(manifest, base)
        if isinstance(files, str):
            skipped[name] = f"not run: {files}"
            continue
        for _layer, inputs, _target in points[name]:
            verify_sha256(base / inputs, "activation file")
        sets[name] = {
            "set": name,
            "model_kind": manifest.kind,
            "schema": manifest.layers[0].schema,
            **manifest.hooks_as_written,
            "files": {str(layer): paths for layer, paths in sorted(files.items())},
            "activation_files": {str(layer): str(base / inputs) for layer, inputs, _ in points[name]},
        }
    job = {
        "sets": sets,
        "skipped": skipped,
        "max_tokens": max_tokens,
        "references": [
            {"name": file.name, "path": str(base / file.path), "set": file.set}
            for file in map(ReferenceFile.from_json, references.values())
            if file.kind in REFERENCE_KINDS and file.set in sets
        ],
        "capture": None,
    }
    if sets and capture:
        job["capture"] = {
            **capture,
            "set": next(iter(sets)),
            "hooks": [[hook, HOOK_POINTS[hook].in_block] for hook in capture["hooks"]],  # forward order
        }
    return job
