"""Every data file's content hash (BLAKE3; sha256 for files written before it) is recorded beside it
and checked by each reader: any changed byte of a tokens, activation or features file is an error
naming the file and both digests."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import threading

import blake3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mi_oracle.errors import DataFileError
from mi_oracle.parquet_files import (
    WRITE_OPTIONS,
    digest_sidecar,
    iter_batches,
    open_parquet,
    open_parquet_pair,
    prefetched,
    publish,
    read_metadata,
    read_parquet,
    record_sha256,
    sha256_sidecar,
    verify_sha256,
)


def written(path):
    table = pa.table({"prompt_id": pa.array(range(64), pa.int64()), "value": [float(i) for i in range(64)]})
    temporary = path.with_name(f".{path.name}.partial")
    pq.write_table(table, temporary, **WRITE_OPTIONS)
    publish(temporary, path)
    return path


def offsets(path):
    column = pq.ParquetFile(path).metadata.row_group(0).column(1)
    footer_length = int.from_bytes(path.read_bytes()[-8:-4], "little")
    return {
        "page header": column.data_page_offset + 2,
        "page body": column.data_page_offset + column.total_compressed_size // 2,
        "footer": path.stat().st_size - 8 - footer_length // 2,
    }


def test_the_sidecar_is_what_b3sum_checks_and_parquet_readers_skip(tmp_path):
    path = written(tmp_path / "part-00000.parquet")
    sidecar = digest_sidecar(path)
    assert (
        sidecar.name == "_part-00000.parquet.blake3"
        and not path.with_name(".part-00000.parquet.partial").exists()
        and not sha256_sidecar(path).exists()
    )
    # b3sum's format, the digest computed here by the blake3 package itself
    assert sidecar.read_text() == f"{blake3.blake3(path.read_bytes()).hexdigest()}  part-00000.parquet\n"
    assert pq.ParquetDataset(tmp_path).read().num_rows == 64  # the sidecar is not data
    assert read_parquet(path, "tokens table").num_rows == 64


def old_sha256_sidecar(path):
    """The sidecar a file written before BLAKE3 has, in the format ``sha256sum -c`` checks."""
    digest_sidecar(path).unlink()
    sha256_sidecar(path).write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    check = subprocess.run(
        ["sha256sum", "-c", sha256_sidecar(path).name], cwd=path.parent, capture_output=True
    )
    assert check.returncode == 0


READERS = {
    "open_parquet": lambda path: open_parquet(path, "features file"),
    "read_parquet": lambda path: read_parquet(path, "features file"),
    "read_metadata": read_metadata,
    "open_parquet_pair": lambda path: open_parquet_pair(path, path, "features file"),
}


@pytest.mark.parametrize("part", ["page header", "page body", "footer"])
@pytest.mark.parametrize("reader", READERS)
def test_a_changed_byte_anywhere_is_refused_by_every_reader_naming_the_file(tmp_path, part, reader):
    path = written(tmp_path / "part-00000.parquet")
    stat = path.stat()
    data = bytearray(path.read_bytes())
    offset = offsets(path)[part]
    data[offset : offset + 4] = bytes(byte ^ 0x5A for byte in data[offset : offset + 4])
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    digest = blake3.blake3(bytes(data)).hexdigest()
    recorded = digest_sidecar(path).read_text().split()[0]
    with pytest.raises(
        DataFileError,
        match=rf"{path}: the (features|activation) file changed since it was written: blake3 {digest}, "
        rf"recorded {recorded} in _part-00000.parquet.blake3",
    ):
        READERS[reader](path)


@pytest.mark.parametrize("reader", READERS)
def test_a_file_written_before_blake3_is_read_through_its_sha256_and_a_changed_byte_refused(tmp_path, reader):
    path = written(tmp_path / "part-00000.parquet")
    old_sha256_sidecar(path)
    verify_sha256(path, "tokens table")  # still readable
    data = bytearray(path.read_bytes())
    offset = offsets(path)["page body"]
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    digest = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(
        DataFileError, match=rf"{path}: .* changed since it was written: sha256 {digest}, rec"
    ):
        READERS[reader](path)


def test_recording_again_replaces_an_old_sha256_sidecar(tmp_path):
    path = written(tmp_path / "part-00000.parquet")
    old_sha256_sidecar(path)
    path.write_bytes(path.read_bytes())  # same bytes, rewritten
    record_sha256(path)
    assert digest_sidecar(path).exists() and not sha256_sidecar(path).exists()
    verify_sha256(path, "tokens table")


def test_a_truncated_file_is_refused_naming_it(tmp_path):
    path = written(tmp_path / "part-00000.parquet")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataFileError, match=rf"{path}: the activation file changed since it was written"):
        read_parquet(path, "activation file")


def test_a_missing_or_foreign_sidecar_is_refused(tmp_path):
    path = written(tmp_path / "part-00000.parquet")
    digest_sidecar(path).write_text("not a digest\n")
    with pytest.raises(DataFileError, match=r"_part-00000\.parquet\.blake3: expected '<blake3>  part-00000"):
        read_parquet(path, "activation file")
    digest_sidecar(path).unlink()
    with pytest.raises(DataFileError, match=rf"{path}: the activation file has no readable recorded hash"):
        read_parquet(path, "activation file")
    record_sha256(path)
    assert read_parquet(path, "activation file").num_rows == 64


def test_prefetched_batches_come_in_order_errors_in_place_and_an_early_exit_stops_the_thread(tmp_path):
    path = written(tmp_path / "part-00000.parquet")
    direct = list(iter_batches(open_parquet(path, "tokens table"), path, "tokens table", 10))
    ahead = list(prefetched(iter_batches(open_parquet(path, "tokens table"), path, "tokens table", 10)))
    assert len(ahead) == 7 and all(a.equals(b) for a, b in zip(ahead, direct, strict=True))

    def failing():
        yield from range(3)
        raise DataFileError(f"{path}: row 30 is broken")

    seen = []
    with pytest.raises(DataFileError, match="row 30 is broken"):
        for item in prefetched(failing()):
            seen.append(item)
    assert seen == [0, 1, 2]
    closed = []

    def counting():
        try:
            yield from itertools.count()
        finally:
            closed.append(threading.current_thread().name)

    endless = prefetched(counting())
    assert [next(endless), next(endless)] == [0, 1]
    endless.close()
    assert not [thread for thread in threading.enumerate() if thread.name == "prefetch"]
    assert closed == ["prefetch"]  # the source closed too, on the thread that ran it


def test_without_the_blake3_package_new_sidecars_are_sha256_and_blake3_ones_are_refused_by_name(tmp_path):
    blake3_file = written(tmp_path / "part-00000.parquet")
    sha256_file = written(tmp_path / "part-00001.parquet")
    sha256_file.with_name("_part-00001.parquet.blake3").unlink()
    child = f"""
import sys
sys.modules["blake3"] = None  # as on a machine without the package
from pathlib import Path
from mi_oracle.errors import DataFileError
from mi_oracle.parquet_files import digest_sidecar, read_parquet, record_sha256
record_sha256(Path({str(sha256_file)!r}))
print(digest_sidecar(Path({str(sha256_file)!r})).name, read_parquet(Path({str(sha256_file)!r}), "t").num_rows)
try:
    read_parquet(Path({str(blake3_file)!r}), "t")
except DataFileError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == "_part-00001.parquet.sha256 64"
    assert lines[1].startswith(f"{digest_sidecar(blake3_file)}: recorded with blake3, but the blake3 package")


def test_batches_decoded_on_several_threads_are_the_same_batches_in_order_and_errors_name_the_file(tmp_path):
    path = tmp_path / "part-00000.parquet"
    temporary = path.with_name(f".{path.name}.partial")
    values = pa.FixedSizeListArray.from_arrays(pa.array(range(1000 * 3), pa.float32()), 3)
    table = pa.table({"prompt_id": pa.array(range(1000), pa.int64()), "activation": values})
    pq.write_table(table, temporary, row_group_size=64, **WRITE_OPTIONS)
    publish(temporary, path)
    for batch_size, columns in [(100, None), (64, ["activation"]), (1000, None), (37, ["prompt_id"])]:
        serial = list(iter_batches(open_parquet(path, "t"), path, "t", batch_size, columns))
        parallel = list(iter_batches(open_parquet(path, "t"), path, "t", batch_size, columns, threads=3))
        assert [b.num_rows for b in parallel] == [b.num_rows for b in serial]
        assert all(a.equals(b) for a, b in zip(parallel, serial, strict=True))
    broken = written_with_row_groups(tmp_path / "part-00001.parquet")
    data = bytearray(broken.read_bytes())
    offset = pq.ParquetFile(broken).metadata.row_group(3).column(0).data_page_offset + 1
    data[offset : offset + 4] = b"\xff\xff\xff\xff"  # a page header of row group 3 made unreadable
    broken.write_bytes(bytes(data))
    record_sha256(broken)  # recorded as it now is: only decoding can tell
    source = open_parquet(broken, "activation file")
    with pytest.raises(DataFileError, match=rf"{broken}: the activation file is unreadable or corrupt"):
        list(iter_batches(source, broken, "activation file", 10, threads=2))


def written_with_row_groups(path):
    table = pa.table({"prompt_id": pa.array(range(200), pa.int64())})
    pq.write_table(table, path, row_group_size=20, **WRITE_OPTIONS)
    record_sha256(path)
    return path
