"""Parquet files written with page checksums and a recorded content hash, read with the hash verified.

Every data file mi-oracle writes (tokens, activations, features) gets a sidecar beside it naming
its hash: ``_<name>.blake3`` (``b3sum -c`` checks it) or, for files written before BLAKE3,
``_<name>.sha256`` (``sha256sum -c``), both ``<hex digest>  <name>``; Parquet readers skip files
starting with ``_``. Every reader here maps the file once, hashes the mapped bytes and decodes those
same bytes, so any changed byte (a page header, a page body, the footer) is an error naming the
file and both digests, and no second read of the file can see other bytes. Each data page also
carries a CRC32 (``write_page_checksum``) for other readers; ours skip it, the whole-file hash
covering every byte already. A truncated file, a foreign one and a non-finite value are errors
naming the file (and row and column). ``record_sha256`` and ``verify_sha256`` keep their names from
the sha256 days: they record (and check) the content hash of either algorithm.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mi_oracle.atomic import write_text_atomic
from mi_oracle.errors import DataFileError
from mi_oracle.hashing import DEFAULT_CONTENT_ALGORITHM, KNOWN_CONTENT_ALGORITHMS, content_digest

WRITE_OPTIONS = {"write_page_checksum": True}
METADATA_KEY = b"mi_oracle"  # the key-value metadata (JSON) of every data file mi-oracle writes
_REWRITE = "rerun the step that wrote it (snakemake --forcerun <rule>) or restore the file"
_HEX_LENGTH = 64  # BLAKE3's default output and sha256: 32 bytes
_Item = TypeVar("_Item")


def _unreadable(path: Path, what: str, error: Exception) -> DataFileError:
    return DataFileError(f"{path}: the {what} is unreadable or corrupt ({error}); {_REWRITE}")


def digest_sidecar(path: Path, algorithm: str = DEFAULT_CONTENT_ALGORITHM) -> Path:
    """Where the ``algorithm`` digest of data file ``path`` is recorded: ``_<name>.<algorithm>``."""
    path = Path(path)
    return path.with_name(f"_{path.name}.{algorithm}")


def sha256_sidecar(path: Path) -> Path:
    """Where a sha256 of data file ``path`` is recorded (files written before BLAKE3)."""
    return digest_sidecar(path, "sha256")


def recorded_sidecar(path: Path) -> Path:
    """The sidecar that records ``path``'s hash: the BLAKE3 one, else the sha256 one, else the
    default algorithm's (missing) one."""
    for algorithm in KNOWN_CONTENT_ALGORITHMS:
        if digest_sidecar(path, algorithm).exists():
            return digest_sidecar(path, algorithm)
    return digest_sidecar(path)


def _mapped(path: Path, what: str) -> pa.Buffer:
    """The whole file as one buffer over a read-only map of it (nothing copied)."""
    try:
        with pa.memory_map(str(path), "r") as source:
            return source.read_buffer()
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(Path(path), what, error) from error


def record_sha256(content: Path, published_as: Path | None = None) -> str:
    """Record the content hash (BLAKE3 where installed) of ``content`` in the sidecar of
    ``published_as`` (default: ``content``); a sidecar of the other algorithm is removed."""
    target = Path(published_as or content)
    digest = content_digest(_mapped(Path(content), "file"), DEFAULT_CONTENT_ALGORITHM)
    write_text_atomic(digest_sidecar(target), f"{digest}  {target.name}\n")
    for algorithm in KNOWN_CONTENT_ALGORITHMS:
        if algorithm != DEFAULT_CONTENT_ALGORITHM:
            digest_sidecar(target, algorithm).unlink(missing_ok=True)
    return digest


def publish(temporary: Path, final: Path) -> None:
    """Record the content hash of a completed ``temporary`` file for ``final``, then rename it there."""
    record_sha256(temporary, final)
    os.replace(temporary, final)


def verified_buffer(path: Path, what: str, threads: int = 1) -> pa.Buffer:
    """``path``'s bytes, mapped, refused unless they hash to what its sidecar records."""
    path = Path(path)
    sidecar = recorded_sidecar(path)
    algorithm = sidecar.suffix[1:]
    try:
        recorded = sidecar.read_text(encoding="utf-8").split()
    except OSError as error:
        raise DataFileError(
            f"{path}: the {what} has no readable recorded hash ({sidecar}: {error.strerror}); {_REWRITE}"
        ) from error
    if len(recorded) != 2 or recorded[1] != path.name or len(recorded[0]) != _HEX_LENGTH:
        raise DataFileError(f"{sidecar}: expected '<{algorithm}>  {path.name}'; {_REWRITE}")
    data = _mapped(path, what)
    try:
        actual = content_digest(data, algorithm, threads)
    except ModuleNotFoundError as error:
        raise DataFileError(f"{sidecar}: recorded with {algorithm}, but {error}") from error
    if actual != recorded[0].lower():
        raise DataFileError(
            f"{path}: the {what} changed since it was written: {algorithm} {actual}, recorded "
            f"{recorded[0]} in {sidecar.name}; {_REWRITE}"
        )
    return data


def verify_sha256(path: Path, what: str) -> None:
    """Refuse ``path`` unless its bytes have the hash its sidecar records (BLAKE3 or sha256)."""
    verified_buffer(path, what)


def _open(data: pa.Buffer, path: Path, what: str) -> pq.ParquetFile:
    try:
        # pre_buffer=False: Arrow would otherwise prefetch (and keep) every row group of the file
        return pq.ParquetFile(pa.BufferReader(data), pre_buffer=False)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(Path(path), what, error) from error


def open_parquet(path: Path, what: str, threads: int = 1) -> pq.ParquetFile:
    """``path`` opened for streaming, its hash verified first (``what`` names it in errors);
    the file is read from the very bytes that were hashed."""
    data = verified_buffer(path, what, threads)
    opened = _open(data, path, what)
    opened.verified_bytes = data  # what iter_batches' threads open again
    return opened


def open_parquet_pair(first: Path, second: Path, what: str) -> tuple[pq.ParquetFile, pq.ParquetFile]:
    """Two files opened, each hash verified; one path twice is opened (and hashed) once."""
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


def read_parquet(path: Path, what: str, columns: Sequence[str] | None = None, threads: int = 1) -> pa.Table:
    """The whole table (or ``columns``), decoded from the very bytes whose hash was verified."""
    source = open_parquet(path, what, threads)
    try:
        return source.read(columns=columns, use_threads=threads > 1)
    except (pa.ArrowException, OSError) as error:
        raise _unreadable(Path(path), what, error) from error


def iter_batches(
    source: pq.ParquetFile,
    path: Path,
    what: str,
    batch_size: int,
    columns: Sequence[str] | None = None,
    threads: int = 1,
) -> Iterator[pa.RecordBatch]:
    """The batches of an open file; a checksum or decoding failure mid-file names the file.

    ``threads`` > 1 (a file from ``open_parquet``): row groups decode on that many threads, at most
    ``threads`` ahead, and come out in the same batches, in order.
    """
    data = getattr(source, "verified_bytes", None)
    if threads > 1 and data is not None and source.metadata.num_row_groups > 1:
        yield from _parallel_batches(
            data, source.metadata.num_row_groups, path, what, batch_size, columns, threads
        )
        return
    batches = source.iter_batches(batch_size=batch_size, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as error:
            raise _unreadable(Path(path), what, error) from error
        yield batch


def _parallel_batches(
    data: pa.Buffer,
    n_groups: int,
    path: Path,
    what: str,
    batch_size: int,
    columns: Sequence[str] | None,
    threads: int,
) -> Iterator[pa.RecordBatch]:
    def read(group: int) -> pa.Table:
        try:  # a reader of its own on each thread, over the same verified bytes
            return _open(data, path, what).read_row_group(group, columns=columns, use_threads=False)
        except (pa.ArrowException, OSError) as error:
            raise _unreadable(Path(path), what, error) from error

    with ThreadPoolExecutor(threads) as pool:
        ahead = deque(pool.submit(read, group) for group in range(min(threads, n_groups)))
        pending: pa.Table | None = None
        for group in range(n_groups):
            table = ahead.popleft().result()
            if group + threads < n_groups:
                ahead.append(pool.submit(read, group + threads))
            pending = table if pending is None else pa.concat_tables([pending, table])
            while pending.num_rows >= batch_size or (group == n_groups - 1 and pending.num_rows):
                rows = min(batch_size, pending.num_rows)
                yield pending.slice(0, rows).combine_chunks().to_batches()[0]
                pending = pending.slice(rows)


def prefetched(items: Iterator[_Item], depth: int = 2) -> Iterator[_Item]:
    """``items`` produced on a background thread up to ``depth`` ahead (Arrow decodes without the
    GIL, so the next batches decode while the caller computes); an error is raised here, in order.
    Leaving the loop early stops the thread before this generator returns."""
    slots: queue.Queue[tuple[bool, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((False, item)):
                    return
        except BaseException as error:  # handed to the consumer, raised in its thread
            put((True, error))
            return
        finally:  # a generator is closed on the thread that ran it (its own threads end with it)
            if hasattr(items, "close"):
                items.close()
        put((True, None))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            finished, value = slots.get()
            if finished:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        thread.join()


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
    """The mi-oracle key-value metadata of an activation file, its hash verified."""
    return file_metadata(open_parquet(path, "activation file").schema_arrow, path)
