"""Test helpers around the package's float64 oracle (mi_oracle.crossval.oracle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from mi_oracle.crossval.oracle import agreement, dense, load_canonical, oracle, reconstruct

__all__ = ["compare", "dense", "load_canonical", "oracle", "read_table", "reconstruct"]


def read_table(folder: Path, **filters: object):
    dataset = ds.dataset(folder, format="parquet", partitioning="hive", exclude_invalid_files=True)
    expression = None
    for key, value in filters.items():
        term = ds.field(key) == value
        expression = term if expression is None else expression & term
    table = dataset.to_table(filter=expression)
    return table.sort_by([("prompt_id", "ascending"), ("position", "ascending")])


def compare(*arrays: np.ndarray) -> dict[str, int]:
    """``agreement(ours, pre, expected, threshold, x, w_enc)`` asserted: see its bounds."""
    stats = agreement(*arrays)
    assert stats["flips_away_from_threshold"] == 0, stats
    assert stats["compared"] > 0
    assert stats["value_excess"] <= 1, stats
    return {"flips": stats["flips"], "values": stats["values"], "compared": stats["compared"]}
