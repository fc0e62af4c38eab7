"""Parquet files of activations: one per (hook, layer) and shard, written under a temporary name."""

from __future__ import annotations

import contextlib
import errno
import json
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mi_oracle.activation_storage import arrow_type, to_float32, to_stored
from mi_oracle.errors import DataFileError
from mi_oracle.parquet_files import METADATA_KEY, WRITE_OPTIONS, check_finite, publish

# Activations are not dictionary-encoded: distinct floats never fit a dictionary page, and the
# encoder would buffer a whole column chunk before giving up (repeated prompts delay that).
DICTIONARY_COLUMNS = ["prompt_id", "position", "token_id"]
VALUES_COLUMN = "activation.list.element"  # the floats inside the fixed-size list, as Parquet names them


def activation_schema(d_model: int, metadata: Mapping[str, Any], stored: str = "float32") -> pa.Schema:
    """prompt_id, position, token_id and the activation as a fixed-size list of d_model values of
    the stored dtype (``activation_storage``)."""
    return pa.schema(
        [
            ("prompt_id", pa.int64()),
            ("position", pa.int32()),
            ("token_id", pa.int32()),
            ("activation", pa.list_(arrow_type(stored), d_model)),
        ],
        metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()},
    )


class ShardWriters:
    """One ParquetWriter per output, renamed into place only when every write succeeded.

    Points are streamed as their hooks fire: ``put`` copies a point's real rows into one of
    ``n_buffers`` reusable [buffer_rows, d_model] float32 buffers and one of ``writer_threads``
    background threads writes it while the forward goes on (each output always on the same
    thread, so its rows stay in order). ``put`` waits for a free buffer, so the activations
    held at any time are those buffers, allocated once, whatever the size of the corpus and
    however full the batches are.
    """

    def __init__(
        self,
        outputs: Mapping[Any, Path],
        schemas: Mapping[Any, pa.Schema],
        row_group_rows: int,
        compression: str,
        buffer_rows: int,
        n_buffers: int,
        pin_memory: bool = False,
        float_encoding: str = "plain",
        stored_dtype: str = "float32",
        writer_threads: int = 1,
    ) -> None:
        self.outputs = {key: Path(path) for key, path in outputs.items()}
        self.schemas = schemas
        self.row_group_rows = row_group_rows
        self.compression = None if compression == "none" else compression
        # BYTE_STREAM_SPLIT puts each byte of the floats in its own stream: exponents compress.
        # Not for float16 (Parquet FLOAT16 is a 2-byte FIXED_LEN_BYTE_ARRAY, which DuckDB cannot
        # read in that encoding).
        split = float_encoding == "byte_stream_split" and stored_dtype != "float16"
        self.byte_stream_split = [VALUES_COLUMN] if split else False
        self.stored_dtype = stored_dtype  # the schemas' activation type (activation_storage)
        self.buffer_rows = buffer_rows
        self.n_buffers = n_buffers
        self.pin_memory = pin_memory
        self._temporary = {key: path.with_name(f".{path.name}.partial") for key, path in self.outputs.items()}
        self._writers: dict[Any, pq.ParquetWriter] = {}
        self._rows_written = dict.fromkeys(self.outputs, 0)
        # last in, first out: the buffer just written is reused while it is still in cache, and
        # buffers beyond what the writer's pace needs are never touched (never resident)
        self._free: queue.LifoQueue[torch.Tensor] = queue.LifoQueue()
        lanes = max(1, min(writer_threads, len(self.outputs)))
        self._lane = {key: i % lanes for i, key in enumerate(self.outputs)}
        self._pending: list[queue.Queue] = [queue.Queue() for _ in range(lanes)]
        self._threads = [
            threading.Thread(target=self._drain, args=(pending,), name="parquet-writer", daemon=True)
            for pending in self._pending
        ]
        self._error: BaseException | None = None
        self._columns: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._index: torch.Tensor | None = None

    def __enter__(self) -> ShardWriters:
        d_models = {schema.field("activation").type.list_size for schema in self.schemas.values()}
        if len(d_models) != 1:
            raise ValueError(f"outputs of one shard must share d_model; got {sorted(d_models)}")
        for _ in range(self.n_buffers):
            buffer = torch.empty(
                (self.buffer_rows, *d_models), dtype=torch.float32, pin_memory=self.pin_memory
            )
            self._free.put(buffer)
        try:
            for key, temporary in self._temporary.items():
                temporary.parent.mkdir(parents=True, exist_ok=True)
                self._writers[key] = pq.ParquetWriter(
                    temporary,
                    self.schemas[key],
                    compression=self.compression,
                    use_byte_stream_split=self.byte_stream_split,
                    use_dictionary=DICTIONARY_COLUMNS,
                    write_statistics=["prompt_id"],
                    **WRITE_OPTIONS,
                )
        except OSError as error:
            for writer in self._writers.values():
                with contextlib.suppress(OSError):
                    writer.close()
            self._remove_temporaries()
            raise self._write_error(key, error) from error
        for thread in self._threads:
            thread.start()
        return self

    def start_batch(
        self, prompt_ids: np.ndarray, positions: np.ndarray, token_ids: np.ndarray, index: torch.Tensor
    ) -> None:
        """The next batch's real rows: their ids, and ``index`` into the flattened [batch * seq] positions."""
        if index.numel() > self.buffer_rows:
            raise ValueError(f"a batch of {index.numel()} real tokens exceeds buffer_rows={self.buffer_rows}")
        self._columns = (prompt_ids, positions, token_ids)
        self._index = index

    def put(self, key: Any, value: torch.Tensor) -> None:
        """Hand over one point of the current batch: its padded [batch, seq, d_model] value."""
        buffer = self._free.get()
        if self._error is not None:
            self._free.put(buffer)
            raise self._error
        rows = buffer[: self._index.numel()]
        flat = value.reshape(-1, value.shape[-1])
        if flat.dtype == torch.float32 and flat.device.type == "cpu":
            torch.index_select(flat, 0, self._index, out=rows)
        else:
            rows.copy_(flat.index_select(0, self._index))
        self._pending[self._lane[key]].put((key, self._columns, buffer, len(rows)))

    def _drain(self, pending: queue.Queue) -> None:
        while (item := pending.get()) is not None:
            key, columns, buffer, n_rows = item
            try:
                if self._error is None:
                    self._write(key, *columns, buffer[:n_rows].numpy())
            except OSError as error:  # re-raised in the caller's thread, naming the file
                self._error = self._write_error(key, error)
            except BaseException as error:
                self._error = error
            finally:
                del item, columns  # nothing of this point outlives its write
                self._free.put(buffer)

    def _write(
        self,
        key: Any,
        prompt_ids: np.ndarray,
        positions: np.ndarray,
        token_ids: np.ndarray,
        values: np.ndarray,
    ) -> None:
        stored = to_stored(values, self.stored_dtype)
        # an overflow of the model's or the stored dtype is refused here, naming the point and row
        checked = values if stored is values else to_float32(stored)
        check_finite(checked, self.outputs[key], "activation", self._rows_written[key])
        table = pa.Table.from_arrays(
            [
                pa.array(prompt_ids, pa.int64()),
                pa.array(positions, pa.int32()),
                pa.array(token_ids, pa.int32()),
                pa.FixedSizeListArray.from_arrays(
                    pa.array(stored.reshape(-1), arrow_type(self.stored_dtype)), values.shape[1]
                ),
            ],
            schema=self.schemas[key],
        )
        self._writers[key].write_table(table, row_group_size=self.row_group_rows)
        self._rows_written[key] += len(values)

    def _write_error(self, key: Any, error: OSError) -> DataFileError:
        full = error.errno == errno.ENOSPC or "No space left" in str(error)
        reason = "the disk is full" if full else "writing failed"
        return DataFileError(
            f"{self.outputs[key]}: {reason} ({error}); the shard's partial files were removed"
        )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for pending, thread in zip(self._pending, self._threads, strict=True):
            if thread.is_alive():
                pending.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join()
        failure = exc or self._error
        for key, writer in self._writers.items():
            try:  # closing flushes the last row group and the footer: a full disk can fail it too
                writer.close()
            except OSError as error:
                failure = failure or self._write_error(key, error)
            except BaseException as error:
                failure = failure or error
        if failure is None:
            for key, temporary in self._temporary.items():
                publish(temporary, self.outputs[key])
            return
        self._remove_temporaries()
        if exc is None:
            raise failure

    def _remove_temporaries(self) -> None:
        for temporary in self._temporary.values():
            temporary.unlink(missing_ok=True)
