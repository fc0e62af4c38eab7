"""Parquet files of activations: one per (hook, layer) and shard, written under a temporary name."""

from __future__ import annotations

import json
import os
import queue
import threading
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
    """One ParquetWriter per output, renamed into place only when every write succeeded.

    Batches are written by a background thread while the caller computes the next one (a
    double buffer): a new batch is handed over only once the previous one is written, so at
    most two batches are in memory whatever the size of the corpus.
    """

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
        self._pending: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._drain, name="parquet-writer", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> ShardWriters:
        for key, temporary in self._temporary.items():
            temporary.parent.mkdir(parents=True, exist_ok=True)
            self._writers[key] = pq.ParquetWriter(
                temporary, self.schemas[key], compression=self.compression, write_statistics=["prompt_id"]
            )
        self._thread.start()
        return self

    def write_batch(
        self, prompt_ids: np.ndarray, positions: np.ndarray, token_ids: np.ndarray, values: Mapping[Any, Any]
    ) -> None:
        """Hand over one batch: ``values[key]`` is that output's [rows, d_model] float32 array."""
        self._pending.join()
        if self._error is not None:
            raise self._error
        self._pending.put((prompt_ids, positions, token_ids, values))

    def _drain(self) -> None:
        while (item := self._pending.get()) is not None:
            try:
                if self._error is None:
                    self._write_batch(*item)
            except BaseException as error:  # re-raised in the caller's thread
                self._error = error
            finally:
                del item  # release the batch before the producer may hand over the next one
                self._pending.task_done()

    def _write_batch(
        self, prompt_ids: np.ndarray, positions: np.ndarray, token_ids: np.ndarray, values: Mapping[Any, Any]
    ) -> None:
        for key, array in values.items():
            self._write(key, prompt_ids, positions, token_ids, array)

    def _write(
        self,
        key: Any,
        prompt_ids: np.ndarray,
        positions: np.ndarray,
        token_ids: np.ndarray,
        values: np.ndarray,
    ) -> None:
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
        if self._thread.is_alive():
            self._pending.put(None)
            self._thread.join()
        for writer in self._writers.values():
            writer.close()
        if exc_type is None and self._error is not None:
            for temporary in self._temporary.values():
                temporary.unlink(missing_ok=True)
            raise self._error
        if exc_type is None:
            for key, temporary in self._temporary.items():
                os.replace(temporary, self.outputs[key])
        else:
            for temporary in self._temporary.values():
                temporary.unlink(missing_ok=True)
