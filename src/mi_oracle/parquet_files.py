"""Parquet files written with page checksums and a recorded sha256, read with both verified.

Every data file mi-oracle writes (tokens, activations, features) gets a sidecar beside it,
``_<name>.sha256`` in ``sha256sum`` format (``sha256sum -c`` checks it; Parquet readers skip files
starting with ``_``). Every reader here checks the file against it first, so any changed byte (a
page header, a page body, the footer) is an error naming the file. Each data page also carries a
CRC32 (``write_page_checksum``), verified while decoding. A truncated file, a foreign one and a
non-finite value are errors naming the file (and row and column).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mi_oracle.atomic import write_text_atomic
from mi_oracle.errors import DataFileError
from mi_oracle.hashing import sha256_file

WRITE_OPTIONS = {"write_page_checksum": True}
METADATA_KEY = b"mi_oracle"  # the key-value metadata (JSON) of every data file mi-oracle writes
_REWRITE = "rerun the step that wrote it (snakemake --forcerun <rule>) or restore the file"


def _unreadable(path: Path, what: str, error: Exception) -> DataFileError:
    return DataFileError(f"{path}: the {what} is unreadable or corrupt ({error}); {_REWRITE}")


def sha256_sidecar(path: Path) -> Path:
    """Where the sha256 of data file ``path`` is recorded: ``_<name>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(f"_{path.name}.sha256")


def record_sha256(content: Path, published_as: Path | None = None) -> str:
    """Record the sha256 of ``content`` in the sidecar of ``published_as`` (default: ``content``)."""
    target = Path(published_as or content)
    digest = sha256_file(content)
    write_text_atomic(sha256_sidecar(target), f"{digest}  {target.name}\n")
    return digest


def publish(temporary: Path, final: Path) -> None:
    """Record the sha256 of a completed ``temporary`` file for ``final``, then rename it there."""
    record_sha256(temporary, final)
    os.replace(temporary, final)


def verify_sha256(path: Path, what: str) -> None:
    """Refuse ``path`` unless its bytes have the sha256 its sidecar records."""
    path, sidecar = Path(path), sha256_sidecar(path)
    try:
        recorded = sidecar.read_text(encoding="utf-8").split()
    except OSError as error:
        raise DataFileError(
            f"{path}: the {what} has no readable recorded sha256 ({sidecar}: {error.strerror}); {_REWRITE}"
        ) from error
    if len(recorded) != 2 or recorded[1] != path.name or len(recorded[0]) != 64:
        raise DataFileError(f"{sidecar}: expected '<sha256>  {path.name}'; {_REWRITE}")
    try:
        actual = sha256_file(path)
    except OSError as error:
        raise _unreadable(path, what, error) from error
    if actual != recorded[0]:
        raise DataFileError(
            f"{path}: the {what} changed since it was written: sha256 {actual}, recorded "
            f"{recorded[0]} in {sidecar.name}; {_REWRITE}"
        )


def _open(path: Path, what: str) -> pq.ParquetFile:
    try:
        # pre_buffer=False: Arrow would otherwise prefetch (and keep) every row group of the file
        return pq.ParquetFile(path, pre_buffer=False, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(Path(path), what, error) from error


def open_parquet(path: Path, what: str) -> pq.ParquetFile:
    """``path`` opened for streaming, its sha256 and page checksums verified (``what`` names it in errors)."""
    verify_sha256(path, what)
    return _open(path, what)


def open_parquet_pair(first: Path, second: Path, what: str) -> tuple[pq.ParquetFile, pq.ParquetFile]:
    """Two files opened, each sha256 verified; one path twice is opened (and hashed) once."""
    opened = open_parquet(first, what)
    if Path(second).resolve() == Path(first).resolve():
        return opened, opened
    return opened, open_parquet(second, what)


def file_metadata(schema: pa.Schema, path: Path) -> dict[str, Any]:
    """The mi-oracle key-value metadata of a data file, from its (already read) Arrow schema."""
    metadata = schema.metadata or {}
    if METADATA_KEY not in metadata:
        raise DataFileError(f"{path}: no mi_oracle metadata; not an activation file of mi-oracle")
    return json.loads(metadata[METADATA_KEY])


def read_parquet(path: Path, what: str, columns: Sequence[str] | None = None) -> pa.Table:
    """The whole table (or ``columns``), its sha256 and page checksums verified."""
    verify_sha256(path, what)
    try:
        return pq.read_table(path, columns=columns, page_checksum_verification=True)
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
    """The mi-oracle key-value metadata of an activation file, its sha256 verified."""
    return file_metadata(open_parquet(path, "activation file").schema_arrow, path)
