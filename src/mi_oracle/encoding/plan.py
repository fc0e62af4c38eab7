"""Which activation files each (set, layer) reads, and the per-set metrics built from shard sums."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mi_oracle.atomic import write_json_atomic
from mi_oracle.encoding.metrics import MetricSums, summarise
from mi_oracle.environment import describe_environment
from mi_oracle.errors import DictionaryError

TABLE_COLUMNS = (
    "set",
    "layer",
    "schema",
    "target_hook",
    "n_tokens",
    "mean_l0",
    "mse",
    "fvu",
    "dead_features",
)


def encoding_points(
    manifest: Mapping[str, Any], capture_hooks: Sequence[str], capture_layers: Sequence[int]
) -> list[tuple[int, str, str]]:
    """(layer, input hook, target hook) per layer to encode; a hook or layer not captured is an error.

    The layers to encode are the manifest's ``encode_layers``; other resolved layers are there for
    the references only.
    """
    name = manifest["set"]
    target_hook = manifest["input_hook"] if manifest["kind"] == "sae" else manifest["output_hook"]
    resolved = [record["layer"] for record in manifest["layers"]]
    points = []
    for layer in manifest.get("encode_layers", resolved):
        for role, hook in (("input", manifest["input_hook"]), ("target", target_hook)):
            if hook not in capture_hooks or layer not in capture_layers:
                raise DictionaryError(
                    f"dictionaries[{name}]: layer {layer} reads its {role} at hook {hook!r}, which the "
                    f"capture does not record (capture.hooks {list(capture_hooks)}, capture.layers "
                    f"{list(capture_layers)}): add it there, or narrow dictionaries[{name}].layers"
                )
        points.append((layer, manifest["input_hook"], target_hook))
    return points


def write_metrics(
    manifest: Mapping[str, Any], sums_paths: Sequence[Path], metrics_path: Path, table_path: Path
) -> dict[str, Any]:
    """Aggregate shard sums into ``metrics.json`` (per layer) and a TSV table, one row per layer."""
    by_layer: dict[int, list[MetricSums]] = {}
    for path in sums_paths:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        by_layer.setdefault(record["layer"], []).append(MetricSums.from_json(record["sums"]))
    target_hook = manifest["input_hook"] if manifest["kind"] == "sae" else manifest["output_hook"]
    schemas = {record["layer"]: record["schema"] for record in manifest["layers"]}
    layers = {
        str(layer): {"schema": schemas[layer], "target_hook": target_hook, **summarise(parts)}
        for layer, parts in sorted(by_layer.items())
    }
    metrics = {
        "set": manifest["set"],
        "kind": manifest["kind"],
        "synthetic": manifest["synthetic"],
        "target": "the input (SAE)"
        if manifest["kind"] == "sae"
        else f"the captured {target_hook} (same layer)",
        "layers": layers,
        "environment": describe_environment(),
    }
    write_json_atomic(metrics_path, metrics)
    buffer = io.StringIO()
    table = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    table.writerow(TABLE_COLUMNS)
    for layer, values in layers.items():
        row = {"set": manifest["set"], "layer": layer, **values}
        table.writerow([_cell(row[column]) for column in TABLE_COLUMNS])
    tmp = Path(table_path).with_name(f".{Path(table_path).name}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    tmp.replace(table_path)
    return metrics


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
