"""Generate the configured references and write each, byte-reproducibly, under a temporary name.

Beside each reference goes its provenance file: the machine it ran on (hardware fingerprint,
platform, interpreter) and the reference's sha256. The reference itself holds only what the
config and the pinned environment determine, so in portable numerics its bytes are the same on
any x86-64 machine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mi_oracle.atomic import write_json_atomic
from mi_oracle.dictionaries.manifest import Manifest, read_manifest
from mi_oracle.environment import describe_environment
from mi_oracle.errors import NumericsError
from mi_oracle.hashing import sha256_file
from mi_oracle.numerics.mode import PORTABLE, Numerics
from mi_oracle.reference_plan import transcoder_layers
from mi_oracle.references.families import family_named, family_of_model_type
from mi_oracle.references.forward_parity import checkpoint_config, forward_parity_reference
from mi_oracle.references.forward_reference import forward_reference
from mi_oracle.references.plt_saelens import saelens_plt_reference
from mi_oracle.references.provenance import ENVIRONMENT_KEY
from mi_oracle.references.quantized import SCHEMES
from mi_oracle.references.sae_reference import sae_reference
from mi_oracle.references.transcoder_reference import transcoder_reference

log = logging.getLogger(__name__)
OLDEST_VERSION = "0.1.12"  # the seeds' schemas; 0.1.24 is candle-mi's current one
PARITY_KINDS = ("longrope", "quantized", "forward")


def build_reference(
    item: Mapping[str, Any],
    options: Mapping[str, Any],
    model_dir: Path,
    manifest: Manifest | None,
    base: Path,
) -> dict[str, Any]:
    """The reference document ``item`` (one entry of ``references.items``) describes."""
    kind = item["kind"]
    settings = {key: options[key] for key in ("device", "dtype", "threads")}
    version = item.get("schema_version", OLDEST_VERSION)
    if kind == "forward" and version == OLDEST_VERSION:
        return forward_reference(item["prompts"], model_dir, settings)
    if kind in PARITY_KINDS:
        return parity_reference(item, model_dir, settings)
    if kind == "plt" and version != OLDEST_VERSION:
        layers = transcoder_layers(item, manifest.listed_layers) if manifest else item["layers"]
        return saelens_plt_reference(item["name"], item, layers, options["seeds_per_layer"])
    assert manifest is not None
    if kind == "sae":
        return sae_reference(manifest, item["layer"], item["prompt"], model_dir, settings, base)
    layers = transcoder_layers(item, manifest.listed_layers)
    return transcoder_reference(kind, manifest, layers, options["seeds_per_layer"], base)


def parity_reference(item: Mapping[str, Any], model_dir: Path, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A candle-mi 0.1.24 forward, longrope or quantized reference (its family named or detected)."""
    name = item["name"]
    if "family" in item:
        family = family_named(item["family"], name)
    else:
        family = family_of_model_type(checkpoint_config(model_dir).get("model_type", ""), name)
    if item["kind"] == "quantized":  # the suite checked the checkpoint's quantization_config
        settings = {**settings, "dtype": SCHEMES[item["scheme"]].dtype}
    return forward_parity_reference(
        name, family, item["prompts"], model_dir, settings, item.get("long_prompt")
    )


def write_reference(
    item: Mapping[str, Any],
    options: Mapping[str, Any],
    model_dir: Path,
    manifest_path: Path | None,
    output: Path,
    provenance_output: Path | None = None,
    base: Path | None = None,
    numerics: Numerics = PORTABLE,
) -> dict[str, Any]:
    """Build the reference in ``numerics`` and write it: keys in schema order, fp32 values, ASCII, no NaN.

    Portable references run their model forward on the CPU (``device: auto`` means the CPU here).
    """
    options = {**options, "threads": numerics.threads}
    if numerics.mode == "portable":
        if options["device"] not in ("cpu", "auto"):
            raise NumericsError(
                f"references.device {options['device']}: portable references run on the CPU; "
                "set numerics.references: native to run them on a GPU"
            )
        options["device"] = "cpu"
    return numerics.run(
        _write_reference,
        item=dict(item),
        options=options,
        model_dir=None if model_dir is None else Path(model_dir),
        manifest_path=None if manifest_path is None else Path(manifest_path),
        output=Path(output),
        provenance_output=None if provenance_output is None else Path(provenance_output),
        base=(base or Path.cwd()).resolve(),
        numerics=numerics.record(),
    )


def write_references(
    items: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any],
    model_dir: Path,
    manifests: Mapping[str, Path],
    outputs: Mapping[str, tuple[Path, Path]],
    base: Path | None = None,
    numerics: Numerics = PORTABLE,
) -> dict[str, dict[str, Any]]:
    """:func:`write_reference` for every item, in order: ``manifests`` by set name, ``outputs`` (the
    reference and its provenance) by item name. Run in a process that is in ``numerics`` already,
    they share one interpreter."""
    documents = {}
    for item in items:
        reference, provenance = outputs[item["name"]]
        manifest = manifests[item["set"]] if "set" in item else None
        documents[item["name"]] = write_reference(
            item, options, model_dir, manifest, reference, provenance, base, numerics
        )
    return documents


def _write_reference(
    item: Mapping[str, Any],
    options: Mapping[str, Any],
    model_dir: str | Path | None,
    manifest_path: str | Path | None,
    output: str | Path,
    provenance_output: str | Path | None,
    base: str | Path,
    numerics: Mapping[str, Any],
) -> dict[str, Any]:
    manifest = read_manifest(Path(manifest_path)) if manifest_path is not None else None
    document = build_reference(item, options, model_dir and Path(model_dir), manifest, Path(base))
    document[ENVIRONMENT_KEY]["numerics"] = dict(numerics)
    write_json_atomic(Path(output), document, sort_keys=False, ensure_ascii=True, allow_nan=False)
    if provenance_output is not None:
        record = {
            "reference": Path(output).name,
            "sha256": sha256_file(Path(output)),
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "numerics": dict(numerics),
            "environment": describe_environment(document[ENVIRONMENT_KEY]["device"]),
        }
        write_json_atomic(Path(provenance_output), record)
    log.info(
        "%s: %s reference written to %s (%s numerics)", item["name"], item["kind"], output, numerics["mode"]
    )
    return document
