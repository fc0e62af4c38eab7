"""Make every reference of one model into its folder, byte-reproducibly, in one job.

Each item is built by its kind (``references/kinds``). Beside each reference goes its provenance
file (``provenance/<name>.json``): the machine it ran on (hardware fingerprint, platform,
interpreter) and the reference's sha256; or, for a reference this machine cannot make (a
quantized checkpoint without CUDA or its backend), what it lacks. The reference itself holds only
what the config and the pinned environment determine, so in portable numerics its bytes are the
same on any x86-64 machine. The folder is built under a temporary name and renamed into place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.environment import describe_environment
from mi_oracle.errors import NumericsError
from mi_oracle.hashing import sha256_file
from mi_oracle.json_files import read_json
from mi_oracle.layout import reference_file, reference_provenance_file
from mi_oracle.numerics.mode import PORTABLE, Numerics
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds import BuildContext, kind_of
from mi_oracle.references.kinds.base import MADE, NEEDS_GPU
from mi_oracle.references.provenance import ENVIRONMENT_KEY

log = logging.getLogger(__name__)


def portable_options(options: Mapping[str, Any], numerics: Numerics) -> dict[str, Any]:
    """``options`` with the thread count; portable references run on the CPU (``auto``: the CPU)."""
    options = {**options, "threads": numerics.threads}
    if numerics.mode == "portable":
        if options["device"] not in ("cpu", "auto"):
            raise NumericsError(
                f"references.device {options['device']}: portable references run on the CPU; "
                "set numerics.references: native to run them on a GPU"
            )
        options["device"] = "cpu"
    return options


def write_model_references(
    items: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any],
    model_dir: Path | None,
    manifests: Mapping[str, Path],
    folder: Path,
    numerics: Numerics,
    base: Path | None = None,
) -> dict[str, str]:
    """Make ``items`` (``ReferenceItem.to_json`` entries of one model) into ``folder``.

    Items a kind can make portably run in ``numerics`` (one interpreter for all of them, so the
    model loads once); the others (quantized) in native numerics. ``manifests`` by set name.
    Returns each item's status: ``made`` or ``needs a GPU``.
    """
    typed = [ReferenceItem.from_json(item) for item in items]
    native = Numerics("native", numerics.threads)
    groups = [
        (numerics, [item for item in typed if kind_of(item).portable(item)]),
        (native, [item for item in typed if not kind_of(item).portable(item)]),
    ]
    statuses: dict[str, str] = {}
    with atomic_directory(Path(folder)) as staging:
        (staging / "provenance").mkdir()
        for mode, group in groups:
            if group:
                statuses |= mode.run(
                    _write_items,
                    items=[item.to_json() for item in group],
                    options=portable_options(options, mode),
                    model_dir=None if model_dir is None else str(model_dir),
                    manifests={name: str(path) for name, path in manifests.items()},
                    folder=str(staging),
                    base=str((base or Path.cwd()).resolve()),
                    numerics=mode.record(),
                )
    return {item.name: statuses[item.name] for item in typed}


def write_reference(
    item: Mapping[str, Any],
    options: Mapping[str, Any],
    model_dir: Path | None,
    manifest_path: Path | None,
    folder: Path,
    numerics: Numerics = PORTABLE,
    base: Path | None = None,
) -> dict[str, Any]:
    """One reference made into ``folder`` (:func:`write_model_references` of one item): its document."""
    typed = ReferenceItem.from_json(item)
    set_name = kind_of(typed).item_set(typed)
    manifests = {set_name: Path(manifest_path)} if set_name and manifest_path is not None else {}
    write_model_references([typed.to_json()], options, model_dir, manifests, folder, numerics, base)
    return read_json(reference_file(folder, typed.name))


def _write_items(
    items: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any],
    model_dir: str | None,
    manifests: Mapping[str, str],
    folder: str,
    base: str,
    numerics: Mapping[str, Any],
) -> dict[str, str]:
    statuses = {}
    for entry in items:
        item = ReferenceItem.from_json(entry)
        kind = kind_of(item)
        set_name = kind.item_set(item)
        context = BuildContext(
            model_dir=None if model_dir is None else Path(model_dir),
            manifest=read_manifest(Path(manifests[set_name])) if set_name else None,
            options=options,
            base=Path(base),
        )
        statuses[item.name] = write_one(item, context, Path(folder), numerics)
    return statuses


def write_one(item: ReferenceItem, context: BuildContext, folder: Path, numerics: Mapping[str, Any]) -> str:
    """Build ``item`` and write it and its provenance into ``folder``: keys in schema order, fp32
    values, ASCII, no NaN. Returns ``made``, or ``needs a GPU`` where only its record is written."""
    kind = kind_of(item)
    provenance = reference_provenance_file(folder, item.name)
    unmade = kind.unmade(item, context)
    if unmade is not None:
        write_json_atomic(provenance, {"status": NEEDS_GPU, **unmade.record})
        log.warning("%s: not made here, it needs %s", item.name, " and ".join(unmade.missing))
        return NEEDS_GPU
    document = kind.build(item, context)
    document[ENVIRONMENT_KEY]["numerics"] = dict(numerics)
    output = reference_file(folder, item.name)
    write_json_atomic(output, document, sort_keys=False, ensure_ascii=True, allow_nan=False)
    record = {
        "reference": output.name,
        "status": MADE,
        "sha256": sha256_file(output),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "numerics": dict(numerics),
        "environment": describe_environment(document[ENVIRONMENT_KEY]["device"]),
    }
    write_json_atomic(provenance, record)
    log.info("%s: %s reference written to %s (%s numerics)", item.name, item.kind, output, numerics["mode"])
    return MADE
