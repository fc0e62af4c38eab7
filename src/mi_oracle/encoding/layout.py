"""Where a shard's features and metric sums live (no torch here: the Snakefile imports it).

A shard's features are one folder, ``shard=<S>/``, holding ``layer=<L>/features.parquet`` per layer
and ``_sums.json`` (the metric sums per layer), so a set's folder reads as one hive-partitioned
dataset with columns ``shard`` and ``layer`` (files starting with ``_`` or ``.`` are not data).
"""

from __future__ import annotations

from pathlib import Path

SUMS_FILE = "_sums.json"


def features_file(shard_dir: Path, layer: int) -> Path:
    """The features of one layer inside a shard's folder."""
    return Path(shard_dir) / f"layer={layer}" / "features.parquet"
