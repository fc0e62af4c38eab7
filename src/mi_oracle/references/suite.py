"""One candle-mi reference of ``config/candle-mi.yaml``, made into its own folder.

The folder holds ``<name>.json`` and its ``provenance.json``; or, for a quantized reference this
machine cannot make (no CUDA device, no backend package), ``needs-gpu.json`` saying what is
missing, once the checkpoint was fetched and its ``quantization_config`` checked. The folder is
built under a temporary name and renamed into place: a failed job leaves nothing behind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.layout import NEEDS_GPU_FILE, PROVENANCE_FILE
from mi_oracle.numerics.mode import Numerics
from mi_oracle.references.generate import write_reference
from mi_oracle.references.provenance import model_record
from mi_oracle.references.quantized import missing_for, needs_gpu_record, quantization_config

log = logging.getLogger(__name__)


def reference_file(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}.json"


def write_suite_reference(
    item: Mapping[str, Any],
    options: Mapping[str, Any],
    model_dir: Path | None,
    manifest_path: Path | None,
    folder: Path,
    numerics: Numerics,
    base: Path | None = None,
) -> str:
    """Make reference ``item`` into ``folder``; return ``made`` or ``needs a GPU``."""
    with atomic_directory(Path(folder)) as staging:
        return _make(item, options, model_dir, manifest_path, staging, numerics, base)


def _make(
    item: Mapping[str, Any],
    options: Mapping[str, Any],
    model_dir: Path | None,
    manifest_path: Path | None,
    folder: Path,
    numerics: Numerics,
    base: Path | None,
) -> str:
    name = item["name"]
    if item["kind"] == "quantized":
        config = quantization_config(Path(model_dir), item["scheme"], name)
        options = {**options, "device": "cuda"}  # every backend runs on CUDA, whatever the suite's device
        missing = missing_for(item["scheme"], options["device"])
        if missing:
            record = needs_gpu_record(name, item["scheme"], missing, config, model_record(Path(model_dir)))
            write_json_atomic(folder / NEEDS_GPU_FILE, record)
            log.warning("%s: not made here, it needs %s", name, " and ".join(missing))
            return "needs a GPU"
        numerics = Numerics("native", numerics.threads)
    write_reference(
        item,
        options,
        model_dir,
        manifest_path,
        reference_file(folder, name),
        folder / PROVENANCE_FILE,
        base=base,
        numerics=numerics,
    )
    return "made"
