"""A features Parquet written on a second thread while the next batch is encoded."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mi_oracle.parquet_files import WRITE_OPTIONS

# No dictionary pages: a batch's feature values are nearly all distinct, and building (then
# abandoning) a dictionary for them took more than half of a features file's write time; the
# files also come out smaller (the benchmark's 4,096-row batch: 1.96 MB -> 1.47 MB).
FEATURES_WRITE_OPTIONS = {**WRITE_OPTIONS, "use_dictionary": False}


class FeaturesFile:
    """Batches appended in order to one Parquet file, each written while the caller goes on.

    Parquet's compression and write release the GIL, so a batch's write overlaps the next batch's
    encode. One write is in flight at most; its error is raised by the next ``append`` or on
    leaving the block. The bytes are those of writing each batch in turn.
    """

    def __init__(
        self, sink: str | Path | pa.NativeFile, schema: pa.Schema, compression: str, row_group_rows: int
    ):
        self._writer = pq.ParquetWriter(sink, schema, compression=compression, **FEATURES_WRITE_OPTIONS)
        self._rows = row_group_rows
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="features-writer")
        self._pending: Future[Any] | None = None
        self.schema = schema

    def append(self, table: pa.Table) -> None:
        self._wait()
        self._pending = self._thread.submit(self._writer.write_table, table, row_group_size=self._rows)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __enter__(self) -> FeaturesFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, *error: object) -> None:
        try:
            self._wait()
        except Exception:
            if kind is None:  # else the error that ended the block is the one to see
                raise
        finally:
            self._thread.shutdown(wait=True)
            self._writer.close()
