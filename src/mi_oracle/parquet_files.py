"""Parquet files written with page checksums and read with them verified; every failure names the file.

Each data page carries a CRC32 of its bytes (``write_page_checksum``); readers verify it, so a
flipped bit in an activation is an error naming the file, not a plausible wrong number. A truncated
file, a foreign one and a non-finite value are errors naming the file (and row and column).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mi_oracle.errors import DataFileError

WRITE_OPTIONS = {"write_page_checksum": True}
METADATA_KEY = b"mi_oracle"  # the key-value metadata (JSON) of every data file mi-oracle writes
_REWRITE = "rerun the step that wrote it (snakemake --forcerun <rule>) or restore the file"


def _unreadable(path: Path, what: str, error: Exception) -> DataFileError:
    return DataFileError(f"{path}: the {what} is unreadable or corrupt ({error}); {_REWRITE}")


def open_parquet(path: Path, what: str) -> pq.ParquetFile:
    """``path`` opened for streaming with page checksums verified (``what`` names it in errors)."""
    try:
        # pre_buffer=False: Arrow would otherwise prefetch (and keep) every row group of the file
        return pq.ParquetFile(path, pre_buffer=False, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(Path(path), what, error) from error


def read_parquet(path: Path, what: str, columns: Sequence[str] | None = None) -> pa.Table:
    """The whole table (or ``columns``), page checksums verified."""
    try:
        return pq.read_table(path, columns=columns, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(Path(path), what, error) from error


def read_schema(path: Path, what: str) -> pa.Schema:
    """The schema (and key-value metadata) of a Parquet file."""
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(Path(path), what, error) from error


def iter_batches(
    source: pq.ParquetFile, path: Path, what: str, batch_size: int, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The batches of an open file; a checksum or decoding failure mid-file names the file."""
    batches = source.iter_batches(batch_size=batch_size, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as error:
            raise _unreadable(Path(path), what, error) from error
        yield batch


def check_finite(values: np.ndarray, path: Path, column: str, first_row: int) -> None:
    """Refuse NaN or infinity in ``values`` ([rows, width], rows from ``first_row`` of ``path``)."""
    finite = np.isfinite(values)
    if finite.all():
        return
    row, index = (int(i) for i in np.argwhere(~finite)[0])
    count = int(finite.size - finite.sum())
    raise DataFileError(
        f"{path}: row {first_row + row}, column {column}[{index}] is {values[row, index]} "
        f"({count} non-finite values in rows {first_row}..{first_row + len(values) - 1}); "
        "activations must be finite (a float16/bfloat16 overflow at capture, or a corrupt file)"
    )


def read_metadata(path: Path) -> dict[str, Any]:
    """The mi-oracle key-value metadata of an activation file."""
    metadata = read_schema(path, "activation file").metadata or {}
    if METADATA_KEY not in metadata:
        raise DataFileError(f"{path}: no mi_oracle metadata; not an activation file of mi-oracle")
    return json.loads(metadata[METADATA_KEY])
