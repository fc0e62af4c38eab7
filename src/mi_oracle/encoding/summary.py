"""A set's metrics: the shards' sums aggregated per layer into ``metrics.json`` and a TSV table."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mi_oracle.atomic import write_json_atomic, write_text_atomic
from mi_oracle.checked_json import read_checked_json
from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.encoding.metrics import MetricSums, summarise
from mi_oracle.environment import describe_environment
from mi_oracle.layout import SUMS_FILE

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


def read_shard_sums(shard_dir: Path) -> dict[int, MetricSums]:
    """The metric sums per layer that ``encode_shard`` wrote into ``shard_dir``."""
    record = read_checked_json(Path(shard_dir) / SUMS_FILE, "shard's metric sums")
    return {int(layer): MetricSums.from_json(value) for layer, value in record["layers"].items()}


def write_metrics(
    manifest: Manifest, shard_dirs: Sequence[Path], metrics_path: Path, table_path: Path
) -> dict[str, Any]:
    """Aggregate the shards' sums into ``metrics.json`` (per layer) and a TSV table, one row a layer."""
    by_layer: dict[int, list[MetricSums]] = {}
    for shard_dir in shard_dirs:
        for layer, sums in read_shard_sums(shard_dir).items():
            by_layer.setdefault(layer, []).append(sums)
    target_hook = manifest.target_hook
    schemas = {record.layer: record.schema for record in manifest.layers}
    layers = {
        str(layer): {"schema": schemas[layer], "target_hook": target_hook, **summarise(parts)}
        for layer, parts in sorted(by_layer.items())
    }
    metrics = {
        "set": manifest.name,
        "kind": manifest.kind,
        "synthetic": manifest.synthetic,
        "target": "the input (SAE)" if manifest.kind == "sae" else f"the captured {target_hook} (same layer)",
        "layers": layers,
        "environment": describe_environment(),
    }
    write_json_atomic(metrics_path, metrics)
    buffer = io.StringIO()
    table = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    table.writerow(TABLE_COLUMNS)
    for layer, values in layers.items():
        row = {"set": manifest.name, "layer": layer, **values}
        table.writerow([_cell(row[column]) for column in TABLE_COLUMNS])
    write_text_atomic(Path(table_path), buffer.getvalue())
    return metrics


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
