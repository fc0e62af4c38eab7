"""The features Parquet: its schema, its write options, and a writer that overlaps writes with work."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mi_oracle.encoding.compute import ID_LIST, VALUE_LIST
from mi_oracle.parquet_files import METADATA_KEY, WRITE_OPTIONS

# No dictionary pages: a batch's feature values are nearly all distinct, and building (then
# abandoning) a dictionary for them took more than half of a features file's write time; the
# files also come out smaller (the benchmark's 4,096-row batch: 1.96 MB -> 1.47 MB). Feature ids
# and values in BYTE_STREAM_SPLIT: an id below 2**24 leaves its high byte streams all zero,
# which zstd skips almost for free (the ids column's write 11.8 -> 7.0 ms a 4,096-row batch;
# ids 1.8 -> 1.3 bytes a value, values 3.3 -> 2.6). Statistics only for the token keys (readers
# prune row groups by prompt): every row group spans nearly all feature ids and values, so their
# min/max prune nothing and cost an eighth of the write. Larger write batches: the list columns
# are encoded in fewer passes.
FEATURES_WRITE_OPTIONS = {
    **WRITE_OPTIONS,
    "use_dictionary": False,
    "use_byte_stream_split": ["feature_ids.list.element", "feature_values.list.element"],
    "write_statistics": ["prompt_id", "position"],
    "write_batch_size": 1 << 16,
}


def features_schema(metadata: Mapping[str, Any]) -> pa.Schema:
    """prompt_id, position, token_id, and the active features as parallel index and value lists.

    Nothing is nullable (every token has lists, possibly empty): the writer then encodes no
    definition levels for the list elements.
    """
    return pa.schema(
        [
            pa.field("prompt_id", pa.int64(), nullable=False),
            pa.field("position", pa.int32(), nullable=False),
            pa.field("token_id", pa.int32(), nullable=False),
            pa.field("feature_ids", ID_LIST, nullable=False),
            pa.field("feature_values", VALUE_LIST, nullable=False),
        ],
        metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()},
    )


class FeaturesWriter:
    """Appends batches to one features Parquet, each written on a background thread.

    ``add`` queues a batch; ``start`` begins writing the queued batch and returns as soon as the
    write has begun; ``wait`` blocks until it is written (and raises what the write raised). A caller starts a
    batch's write where its next batch's single-threaded work begins (finding and sorting the
    active features) and waits before queueing that batch: the write then fills the core that
    work leaves idle, and never competes with the multi-threaded GEMMs. Batches are written one
    at a time, in order: the file is the same as a plain writer's.
    """

    def __init__(
        self, where: Any, metadata: Mapping[str, Any], compression: str, row_group_rows: int
    ) -> None:
        self.schema = features_schema(metadata)
        self._row_group_rows = row_group_rows
        self._writer = pq.ParquetWriter(where, self.schema, compression=compression, **FEATURES_WRITE_OPTIONS)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="features-writer")
        self._queued: pa.Table | None = None
        self._running: Future | None = None

    def add(self, columns: Sequence[pa.Array]) -> None:
        """Queue one batch (columns in the schema's order), after the previous one's ``wait``."""
        if self._queued is not None or self._running is not None:
            raise RuntimeError("FeaturesWriter.add: the previous batch is still queued or being written")
        self._queued = pa.Table.from_arrays(list(columns), schema=self.schema)

    def start(self) -> None:
        """Begin writing the queued batch, if any, on the background thread.

        Returns once the thread has begun: a caller that goes on into a long call holding the
        GIL (numpy's ``flatnonzero``) would otherwise keep the thread from starting at all.
        """
        if self._queued is not None:
            table, self._queued = self._queued, None
            begun = threading.Event()
            self._running = self._thread.submit(self._write, table, begun)
            begun.wait()

    def _write(self, table: pa.Table, begun: threading.Event) -> None:
        begun.set()
        self._writer.write_table(table, self._row_group_rows)

    def wait(self) -> None:
        """Block until the batch being written is written; re-raise the write's error."""
        if self._running is not None:
            running, self._running = self._running, None
            running.result()

    def close(self) -> None:
        """Write what is queued, then close the file (its footer) and the thread."""
        try:
            self.start()
            self.wait()
            self._writer.close()
        finally:
            self._thread.shutdown()

    def __enter__(self) -> FeaturesWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.close()
            return
        with suppress(Exception):  # already failing: let a running write end, keep the first error
            self.wait()
        self._thread.shutdown()
        with suppress(Exception):
            self._writer.close()
