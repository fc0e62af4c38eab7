"""Parquet files of activations: one per (hook, layer) and shard, written under a temporary name."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"mi_oracle"


def activation_schema(d_model: int, metadata: Mapping[str, Any]) -> pa.Schema:
    """prompt_id, position, token_id and the activation as a fixed-size list of d_model float32."""
    return pa.schema(
        [
            ("prompt_id", pa.int64()),
            ("position", pa.int32()),
            ("token_id", pa.int32()),
            ("activation", pa.list_(pa.float32(), d_model)),
        ],
        metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()},
    )


def read_metadata(path: Path) -> dict[str, Any]:
    """The mi-oracle key-value metadata of an activation file."""
    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


class ShardWriters:
    """One ParquetWriter per output, renamed into place only when every write succeeded."""

    def __init__(
        self,
        outputs: Mapping[Any, Path],
        schemas: Mapping[Any, pa.Schema],
        row_group_rows: int,
        compression: str,
    ) -> None:
        self.outputs = {key: Path(path) for key, path in outputs.items()}
        self.schemas = schemas
        self.row_group_rows = row_group_rows
        self.compression = None if compression == "none" else compression
        self._temporary = {key: path.with_name(f".{path.name}.partial") for key, path in self.outputs.items()}
        self._writers: dict[Any, pq.ParquetWriter] = {}

    def __enter__(self) -> ShardWriters:
        for key, temporary in self._temporary.items():
            temporary.parent.mkdir(parents=True, exist_ok=True)
            self._writers[key] = pq.ParquetWriter(
                temporary, self.schemas[key], compression=self.compression, write_statistics=["prompt_id"]
            )
        return self

    def write(
        self,
        key: Any,
        prompt_ids: np.ndarray,
        positions: np.ndarray,
        token_ids: np.ndarray,
        values: np.ndarray,
    ) -> None:
        """Append rows: ``values`` is [rows, d_model] float32."""
        d_model = values.shape[1]
        flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
        table = pa.Table.from_arrays(
            [
                pa.array(prompt_ids, pa.int64()),
                pa.array(positions, pa.int32()),
                pa.array(token_ids, pa.int32()),
                pa.FixedSizeListArray.from_arrays(flat, d_model),
            ],
            schema=self.schemas[key],
        )
        self._writers[key].write_table(table, row_group_size=self.row_group_rows)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for writer in self._writers.values():
            writer.close()
        if exc_type is None:
            for key, temporary in self._temporary.items():
                os.replace(temporary, self.outputs[key])
        else:
            for temporary in self._temporary.values():
                temporary.unlink(missing_ok=True)
