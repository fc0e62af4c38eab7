"""Every data file's sha256 is recorded beside it and checked by each reader: any changed byte of a
tokens, activation or features file is an error naming the file."""

from __future__ import annotations

import os
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mi_oracle.errors import DataFileError
from mi_oracle.parquet_files import (
    WRITE_OPTIONS,
    open_parquet,
    open_parquet_pair,
    publish,
    read_metadata,
    read_parquet,
    record_sha256,
    sha256_sidecar,
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


def test_the_sidecar_is_what_sha256sum_checks_and_parquet_readers_skip(tmp_path):
    path = written(tmp_path / "part-00000.parquet")
    sidecar = sha256_sidecar(path)
    assert (
        sidecar.name == "_part-00000.parquet.sha256"
        and not path.with_name(".part-00000.parquet.partial").exists()
    )
    check = subprocess.run(["sha256sum", "-c", sidecar.name], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0 and "part-00000.parquet: OK" in check.stdout
    assert pq.ParquetDataset(tmp_path).read().num_rows == 64  # the sidecar is not data
    assert read_parquet(path, "tokens table").num_rows == 64


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
    with pytest.raises(DataFileError, match=rf"{path}: the (features|activation) file changed since it was"):
        READERS[reader](path)


def test_a_missing_or_foreign_sidecar_is_refused(tmp_path):
    path = written(tmp_path / "part-00000.parquet")
    sha256_sidecar(path).write_text("not a digest\n")
    with pytest.raises(DataFileError, match=r"_part-00000\.parquet\.sha256: expected '<sha256>  part-00000"):
        read_parquet(path, "activation file")
    sha256_sidecar(path).unlink()
    with pytest.raises(DataFileError, match=rf"{path}: the activation file has no readable recorded sha256"):
        read_parquet(path, "activation file")
    record_sha256(path)
    assert read_parquet(path, "activation file").num_rows == 64
