"""This run's captures and encodings against another run's of the same prompts
(``crossval.compare_run``), e.g. a CUDA run against a CPU one: per hook point the largest
difference, per set and layer the active-set flips and the largest value difference. Reported,
not judged: how far another device's kernels lie is what a candidate from there must tolerate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mi_oracle.activation_storage import activation_matrix
from mi_oracle.crossval.capture import diff_stats
from mi_oracle.crossval.oracle import dense
from mi_oracle.errors import DataFileError
from mi_oracle.layout import activation_file, activations_dir, features_dir, features_file
from mi_oracle.parquet_files import read_metadata, read_parquet

KEYS = ["prompt_id", "position"]


def _same_rows(ours, theirs, ours_path: Path, theirs_path: Path) -> None:
    for key in KEYS:
        if ours[key] != theirs[key]:
            raise DataFileError(
                f"{theirs_path}: its rows are not those of {ours_path} ({key} differs); "
                "crossval.compare_run must capture the same prompts with the same shard plan"
            )


def compare_activations(this: Path, other: Path, hook: str, layer: int, shard: str) -> dict[str, Any]:
    """One hook point of two runs: max abs and max relative (to the row norm) difference."""
    paths = [activation_file(root, hook, layer, shard) for root in (this, other)]
    tables = [read_parquet(path, "activation file", [*KEYS, "activation"]) for path in paths]
    _same_rows(*(t.select(KEYS).to_pydict() for t in tables), *paths)
    ours, theirs = (
        activation_matrix(t["activation"], t.schema.field("activation").type.list_size) for t in tables
    )
    return {"hook": hook, "layer": layer, "n_tokens": len(ours), **diff_stats(ours, theirs)}


def compare_features(this: Path, other: Path, name: str, layer: int) -> dict[str, Any]:
    """One set and layer of two runs: flipped features, and the largest difference where both fire."""
    paths = [features_file(folder, layer) for folder in (this, other)]
    rows = [
        read_parquet(path, "features file", [*KEYS, "feature_ids", "feature_values"]).to_pydict()
        for path in paths
    ]
    _same_rows(*rows, *paths)
    width = 1 + max((max(ids, default=-1) for r in rows for ids in r["feature_ids"]), default=0)
    ours, theirs = (dense(r["feature_ids"], r["feature_values"], width) for r in rows)
    both = (ours != 0) & (theirs != 0)
    return {
        "set": name,
        "layer": layer,
        "n_tokens": len(ours),
        "flips": int(((ours != 0) != (theirs != 0)).sum()),
        "active": int((ours != 0).sum()),
        "max_abs_diff": float(np.abs(ours - theirs)[both].max()) if both.any() else 0.0,
    }


def compare_runs(
    runs: Mapping[str, str], shard: str, points: Sequence[tuple[str, int]], sets: Mapping[str, Sequence[int]]
) -> dict[str, Any]:
    """``runs``: {"this": run name, "other": run name}; ``sets``: set -> its encoded layers."""
    roots = {role: Path(activations_dir(run)) for role, run in runs.items()}
    devices = {
        role: read_metadata(activation_file(root, *points[0], shard))["device"]
        for role, root in roots.items()
    }
    folders = {name: [Path(features_dir(run, name, shard)) for run in runs.values()] for name in sets}
    return {
        "runs": {role: {"run": run, "device": devices[role]} for role, run in runs.items()},
        "shard": shard,
        "activations": [
            compare_activations(roots["this"], roots["other"], h, layer, shard) for h, layer in points
        ],
        "features": [
            compare_features(*folders[name], name, layer) for name, layers in sets.items() for layer in layers
        ],
    }
